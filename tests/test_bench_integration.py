"""``run_bench`` end to end on the packaged weights and the shared eval data, at toy sizes."""

from __future__ import annotations

import json

import pytest

from jasper_rag.bench.run import BenchConfig, run_bench
from jasper_rag.config import Settings
from jasper_rag.encoder import FULL_HEAD, load_encoder
from jasper_rag.eval.tasks import load_task
from jasper_rag.teachers import SentenceTransformerTeacher, model_teachers
from jasper_rag.train.recipes import RECIPES_DIR
from jasper_rag.train.stages import keep_layers
from jasper_rag.vector_cache import CachedEncoder

pytestmark = pytest.mark.integration


def test_every_section_lands_in_the_reports(tmp_path, eval_dir) -> None:
    settings = Settings(eval_dir=eval_dir, model=str(tmp_path / "no-model"))
    config = BenchConfig(
        short_texts=4,
        passages=2,
        latency_queries=3,
        repeats=1,
        encoding_repeats=1,
        quality_tasks=("stsbenchmark",),
        sizes=(1500,),
        factories=("Flat", "SQ8"),
        search_queries=10,
        ingest_docs=3,
        train_steps=1,
    )
    # The in-memory heads are fitted on texts cached for the start and every teacher (`make eval`
    # leaves them); a fresh clone has none, so embed enough STSB sentences here (cached for reruns).
    texts = load_task("stsbenchmark", eval_dir).texts()[:900]
    teachers = model_teachers(settings.student_init)  # no trained model here: the default recipe's teachers
    for name in dict.fromkeys((settings.student_init, *teachers)):
        CachedEncoder(SentenceTransformerTeacher(name, device="cpu"), settings.cache_dir / "vectors").fill(texts)
    # Training speed runs on a tiny corpus of our own (a fresh clone has no `make corpus` output).
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": f"Sentence {i} is about topic {i % 7}."}) + "\n" for i in range(200)))
    recipe = json.loads((RECIPES_DIR / "quick.json").read_text())
    (tmp_path / "recipe.json").write_text(json.dumps({**recipe, "name": "bench-test", "corpus": str(corpus)}))
    config.recipe = str(tmp_path / "recipe.json")
    # A smaller student beside the main one: the start cut to two layers, with a random full head.
    small = load_encoder(settings.student_init, device="cpu")
    keep_layers(small, [0, 3])
    small.add_head(FULL_HEAD, 32)
    small.save(tmp_path / "small")
    config.other_students = (str(tmp_path / "small"), str(tmp_path / "not-trained"))
    files = run_bench(config, output_dir=tmp_path / "reports", settings=settings)
    assert [path.name for path in files] == ["bench.json", "bench.md", "bench.png"]
    data = json.loads((tmp_path / "reports" / "bench.json").read_text())
    roles = [row["role"] for row in data["encoding"]]
    assert roles == ["student"] * 3 + ["other student"] * 3 + ["teacher"] * len(teachers) + ["ensemble"]
    assert {row["variant"] for row in data["quality"]} == {
        *(f"{prefix}{variant}" for prefix in ("", "small ") for variant in ("torch eager", "onnx", "onnx int8"))
    }
    assert data["qualifying_variants"][0] == "torch eager" and not any(
        "small" in v for v in data["qualifying_variants"]
    )
    assert any("not-trained is not trained" in note for note in data["notes"])
    assert "small at ONNX int8" in (tmp_path / "reports" / "bench.md").read_text()
    eager = next(row["score"] for row in data["quality"] if row["variant"] == "torch eager")
    assert eager == pytest.approx(82.03, abs=0.3)  # all-MiniLM-L6-v2's published STSBenchmark Spearman
    assert data["compact"][0]["identical_sets"] == 1.0
    assert [row["backend"] for row in data["ingestion"]] == list(config.ingest_backends)
    assert all(row["chunks"] >= 3 for row in data["ingestion"])
    assert [row["stage"] for row in data["training"]] == [1, 2, 3]
    assert "no trained model" in data["notes"][0]
    assert "x ensemble" in (tmp_path / "reports" / "bench.md").read_text()
