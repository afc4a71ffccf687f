"""Encoding bench: ONNX / int8 variants of the student, FLOP counts, timing summaries."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import BertConfig

from jasper_rag.backends import OnnxEncoder
from jasper_rag.bench.encoding import TextSamples, cut_to_tokens, measure_encoder, transformer_flops
from jasper_rag.bench.quality import VariantQuality, qualifying
from jasper_rag.bench.stats import Latency, Spread, call_latency, rates
from jasper_rag.embedding import TextEncoder

TEXTS = ["the cat sat on the mat", "a dog", "protein cells and cancer risk in a study of the city river", "fire"]


@pytest.mark.parametrize("dim", [None, 48, 16, 8])
def test_onnx_export_gives_the_eager_vectors(tmp_path, tiny_encoder, dim) -> None:
    onnx = OnnxEncoder.export(tiny_encoder, tmp_path / "onnx")
    np.testing.assert_allclose(
        onnx.encode(TEXTS, dim=dim, batch_size=3), tiny_encoder.encode(TEXTS, dim=dim), atol=1e-5
    )
    assert not tiny_encoder.training  # the exporter must not leave dropout on


def test_int8_variant_stays_close_and_views_speak_the_protocol(tmp_path, tiny_encoder) -> None:
    int8 = OnnxEncoder.export(tiny_encoder, tmp_path / "onnx", int8=True)
    assert int8.path.name == "model.int8-channel-scales.onnx" and (tmp_path / "onnx" / "model.onnx").is_file()
    cosines = np.sum(int8.encode(TEXTS, dim=48) * tiny_encoder.encode(TEXTS, dim=48), axis=1)
    assert cosines.min() > 0.95
    view = int8.at(16)
    assert isinstance(view, TextEncoder) and view.dim == 16 and view.name == "tiny-bert@d16[onnx-int8]"
    again = OnnxEncoder.export(tiny_encoder, tmp_path / "onnx", int8=True)  # reuses the files
    assert again.at(16).fingerprint() == view.fingerprint() != int8.at(48).fingerprint()
    with pytest.raises(ValueError, match="no head of dimension 99"):
        int8.at(99)


def test_flops_count_the_matmuls_of_a_bert_layer() -> None:
    config = BertConfig(hidden_size=384, intermediate_size=1536, num_hidden_layers=6)
    per_token = 6 * (4 * 384 * 384 + 2 * 384 * 1536 + 2 * 10 * 384)
    assert transformer_flops(config, 10) == 2 * 10 * per_token
    assert transformer_flops(config, 10, [1152]) == 2 * (10 * per_token + 384 * 1152)


def test_measure_encoder_reports_rates_latency_and_flops(tiny_encoder) -> None:
    samples = TextSamples(short=TEXTS, passages=TEXTS[2:], queries=TEXTS[:3])
    speed = measure_encoder("tiny", "student", tiny_encoder.at(48), samples, repeats=2, batch_size=2, flops=(1.0, 2.0))
    assert speed.short_per_s.min > 0 and speed.passages_per_s.median > 0 and speed.short_per_cpu_s.max > 0
    assert speed.query_latency.calls == 3 and speed.query_latency.p95_ms >= speed.query_latency.p50_ms
    assert speed.to_json()["flops_per_passage"] == 2.0


def test_cut_to_tokens_keeps_long_texts_only(tiny_encoder) -> None:
    cut = cut_to_tokens(tiny_encoder.tokenizer, ["the cat sat on the mat", "a dog"], 3)
    assert cut == ["the cat sat"]


def test_stats_summaries() -> None:
    assert Spread.of([3.0, 1.0, 2.0]) == Spread(1.0, 2.0, 3.0)
    latency = Latency.of([0.001] * 19 + [0.1])
    assert latency.p50_ms == pytest.approx(1.0) and latency.p95_ms > 1.0 and latency.calls == 20
    wall, cpu = rates(lambda: sum(range(10000)), items=10, repeats=3)
    assert wall.min > 0 and cpu.min > 0
    calls = []
    assert call_latency(calls.append, 4, warmup=2).calls == 4 and calls == [0, 1, 0, 1, 2, 3]
    with pytest.raises(ValueError):
        Spread.of([])


def test_variants_qualify_within_the_tolerance() -> None:
    rows = [
        VariantQuality("torch eager", "sts", "spearman", 82.0),
        VariantQuality("onnx", "sts", "spearman", 82.0),
        VariantQuality("onnx int8", "sts", "spearman", 81.8),
        VariantQuality("torch eager", "scifact", "ndcg_at_10", 64.5),
        VariantQuality("onnx", "scifact", "ndcg_at_10", 64.5),
        VariantQuality("onnx int8", "scifact", "ndcg_at_10", 64.0),
    ]
    assert qualifying(rows, "torch eager") == ["torch eager", "onnx"]
    assert qualifying(rows, "torch eager", tolerance=0.6) == ["torch eager", "onnx", "onnx int8"]


def test_variants_are_scored_by_the_eval_tasks_and_cached(tmp_path, tiny_encoder) -> None:
    from jasper_rag.bench.quality import score_variants
    from jasper_rag.eval.data import ScoredPair
    from jasper_rag.eval.tasks import STSTask

    golds = [1.0, 4.0, 2.0, 5.0]
    pairs = [ScoredPair(TEXTS[i], TEXTS[(i + 1) % len(TEXTS)], gold) for i, gold in enumerate(golds)]
    task = STSTask("tiny-sts", pairs)
    onnx = OnnxEncoder.export(tiny_encoder, tmp_path / "onnx")
    variants = {"torch eager": tiny_encoder.at(48), "onnx": onnx.at(48)}
    rows = score_variants(variants, [task], tmp_path / "cache", batch_size=2)
    assert [(row.variant, row.task, row.metric) for row in rows] == [
        ("torch eager", "tiny-sts", "spearman"),
        ("onnx", "tiny-sts", "spearman"),
    ]
    assert rows[0].score == pytest.approx(rows[1].score, abs=1e-6)
    assert len(list((tmp_path / "cache").iterdir())) == 2  # one cache folder per variant
