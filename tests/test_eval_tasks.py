"""Tasks, baselines and shared head passes on tiny data with a bag-of-words encoder and a tiny BERT."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

from jasper_rag.embedding import normalize_rows
from jasper_rag.eval.data import EvalDataError, ScoredPair
from jasper_rag.eval.encoders import PCAEncoder, SharedPassHeads, TruncatedEncoder
from jasper_rag.eval.tasks import FAQTask, RetrievalTask, STSTask, load_task
from jasper_rag.vector_cache import CachedEncoder
from tests.test_eval_data import write_beir, write_sts


class BagOfWords:
    """A deterministic encoder: word counts over a fixed vocabulary (plus a constant), normalised."""

    name = "bag-of-words"

    def __init__(self, vocabulary: Sequence[str] = ()) -> None:
        words = vocabulary or "the a cat sat mat dog ran road protein cells paris capital france music water".split()
        self.index = {word: i for i, word in enumerate(words)}
        self.dim = len(self.index) + 1
        self.calls = 0

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        self.calls += 1
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        vectors[:, -1] = 0.1
        for row, text in enumerate(texts):
            for word in text.lower().replace('"', " ").split():
                if word in self.index:
                    vectors[row, self.index[word]] += 1
        return normalize_rows(vectors)


def test_retrieval_perfect_encoder_scores_100(tmp_path: Path) -> None:
    task = RetrievalTask.from_folder(write_beir(tmp_path / "tiny"))
    assert task.query_ids == ["q1", "q2", "q3", "q4"]  # unjudged q9 is not scored
    assert len(task.texts()) == 4 + 4
    scores = task.evaluate(BagOfWords())
    assert scores == pytest.approx({"ndcg_at_10": 100.0, "recall_at_100": 100.0, "mrr_at_10": 100.0})


def test_retrieval_blind_encoder_scores_low(tmp_path: Path) -> None:
    task = RetrievalTask.from_folder(write_beir(tmp_path / "tiny"))
    scores = task.evaluate(BagOfWords(["unrelated"]))  # every text gets the same vector: ties everywhere
    # ties go to decreasing document id: d4, d3, d2, d1 for every query
    assert scores["mrr_at_10"] == pytest.approx(100 * (1 / 4 + 1 / 3 + 1 / 2 + 1) / 4)
    assert scores["recall_at_100"] == 100.0


def test_sts_correlations() -> None:
    golds_and_pairs = [(5, "cat", "cat"), (4, "cat dog", "cat"), (2, "cat dog road", "cat"), (3, "a b", "b c")]
    golds_and_pairs += [(0, "music", "cat"), (1, "cat dog road mat", "dog")]
    task = STSTask("tiny", [ScoredPair(a, b, gold) for gold, a, b in golds_and_pairs])
    encoder = BagOfWords()
    scores = task.evaluate(encoder)
    first = encoder.encode([pair.first for pair in task.pairs])
    second = encoder.encode([pair.second for pair in task.pairs])
    cosine = (first * second).sum(axis=1)
    gold = [pair.gold for pair in task.pairs]
    assert scores["spearman"] == pytest.approx(100 * spearmanr(cosine, gold).statistic)
    assert scores["pearson"] == pytest.approx(100 * pearsonr(cosine, gold).statistic)


def test_faq_task_definition_and_scores(tmp_path: Path) -> None:
    task = FAQTask.from_sts_file(write_sts(tmp_path / "sts.csv"), target_precision=0.5)
    assert task.questions == [
        "the cat sat on the mat",
        "the dog ran on the road",
        "paris is the capital of france",
        "protein in cells",
    ]
    assert len(task.candidates) == 4  # the paraphrases of gold >= 4 pairs only
    assert len(task.calibration_rows) + len(task.test_rows) == 4
    scores = task.evaluate(BagOfWords())
    assert scores["top1_accuracy"] == 100.0
    assert scores["accuracy_at_threshold"] == 100.0
    assert 0 < scores["threshold"] <= 1
    blind = task.evaluate(BagOfWords(["unrelated"]))
    assert blind["top1_accuracy"] == 25.0


def test_load_task_names_and_errors(tmp_path: Path) -> None:
    write_beir(tmp_path / "tiny")
    write_sts((tmp_path / "stsbenchmark").mkdir() or tmp_path / "stsbenchmark" / "sts-test.csv")
    assert isinstance(load_task("tiny", tmp_path), RetrievalTask)
    assert isinstance(load_task(str(tmp_path / "tiny"), tmp_path / "elsewhere"), RetrievalTask)
    assert load_task("stsbenchmark", tmp_path).name == "STSBenchmark"
    assert load_task("faq", tmp_path).name == "FAQ-STSB"
    with pytest.raises(EvalDataError, match="task 'nope'"):
        load_task("nope", tmp_path)


def test_truncation_and_pca_baselines() -> None:
    base = BagOfWords()
    texts = ["the cat sat", "dog ran road", "protein cells", "paris capital france", "music water", "the a"]
    truncated = TruncatedEncoder(base, 4).encode(texts)
    assert truncated.shape == (6, 4)
    assert np.allclose(truncated[0], normalize_rows(base.encode(texts[:1])[:, :4])[0])
    pca = PCAEncoder(base, 3)
    with pytest.raises(RuntimeError, match="fit"):
        pca.encode(texts)
    vectors = pca.fit(texts).encode(texts)
    assert vectors.shape == (6, 3)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(pca.components @ pca.components.T, np.eye(3), atol=1e-6)
    with pytest.raises(ValueError, match="cannot reduce"):
        TruncatedEncoder(base, base.dim + 1)


def test_shared_pass_matches_each_head_and_runs_backbone_once(tiny_encoder, tmp_path: Path) -> None:
    texts = ["the cat sat on the mat", "protein in cells", "paris is the capital", "the cat sat on the mat"]
    shared = SharedPassHeads(tiny_encoder, [48, 16, 8])
    expected = {dim: tiny_encoder.encode(texts, dim=dim) for dim in (48, 16, 8)}
    calls = []
    original = tiny_encoder.backbone.forward

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    tiny_encoder.backbone.forward = counting
    for dim in (48, 16, 8):
        view = shared.view(dim)
        assert view.name == tiny_encoder.at(dim).name
        assert view.fingerprint() == tiny_encoder.at(dim).fingerprint()
        assert np.allclose(view.encode(texts), expected[dim], atol=1e-5)
    assert len(calls) == 1
    cached = CachedEncoder(shared.view(16), tmp_path / "vectors")
    assert np.allclose(cached.encode(texts[:2]), expected[16][:2], atol=1e-5)
    assert (tmp_path / "vectors").is_dir()


def test_image_tasks_are_loaded_by_name(tmp_path, monkeypatch) -> None:
    from jasper_rag.config import get_settings
    from jasper_rag.vision.data import ImageSetError

    monkeypatch.setattr(get_settings(), "images_dir", tmp_path / "no-images")
    for name in ("images", "zeroshot"):
        with pytest.raises(ImageSetError):
            load_task(name, tmp_path)
