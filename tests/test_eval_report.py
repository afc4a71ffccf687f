"""Reports (JSON, Markdown, PNG), the whole `run_eval` flow on tiny data, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from jasper_rag.cli import app
from jasper_rag.config import Settings
from jasper_rag.eval.mteb_adapter import MTEBModel
from jasper_rag.eval.report import markdown_table
from jasper_rag.eval.run import run_eval
from jasper_rag.eval.runner import ResultRow
from tests.conftest import make_tiny_encoder
from tests.test_eval_data import write_beir, write_sts

ROWS = [
    ResultRow("model-a", 64, "scifact", "ndcg_at_10", 61.234, 10.0),
    ResultRow("model-a", 64, "FAQ-STSB", "threshold", None, 2.5),
    ResultRow("model-b", 128, "scifact", "ndcg_at_10", 70.0, 20.0),
]


def test_markdown_table() -> None:
    lines = markdown_table(ROWS).splitlines()
    assert lines[0] == "| model | dim | scifact nDCG@10 | scifact s | FAQ-STSB thr | FAQ-STSB s |"
    assert lines[1] == "|---|---:|---:|---:|---:|---:|"
    assert lines[2] == "| model-a | 64 | 61.23 | 10 | – | 2 |"
    assert lines[3] == "| model-b | 128 | 70.00 | 20 | – | – |"


def _tiny_setup(tmp_path: Path) -> tuple[Settings, Path]:
    model = make_tiny_encoder(tmp_path, {"full": 48, "d16": 16, "d8": 8}).save(tmp_path / "models" / "tiny")
    eval_dir = tmp_path / "eval"
    write_beir(eval_dir / "tiny")
    (eval_dir / "stsbenchmark").mkdir()
    write_sts(eval_dir / "stsbenchmark" / "sts-test.csv")
    settings = Settings(model=str(model), student_init=str(model), cache_dir=tmp_path / "cache", device="cpu")
    return settings, eval_dir


def test_run_eval_writes_reports_and_reuses_the_cache(tmp_path: Path) -> None:
    settings, eval_dir = _tiny_setup(tmp_path)
    options = dict(
        models=["inhouse", "start", "truncate", "pca"],
        tasks=["tiny", "stsbenchmark", "faq"],
        eval_dir=eval_dir,
        output_dir=tmp_path / "reports",
        baseline_dims=[4, 2],
        settings=settings,
    )
    outcome = run_eval(**options)
    assert [path.name for path in outcome.files] == ["eval.json", "eval.md", "eval.png"]
    payload = json.loads((tmp_path / "reports" / "eval.json").read_text())
    rows = payload["rows"]
    assert len(rows) == (3 + 1 + 2 + 2) * (3 + 2 + 4)
    assert set(rows[0]) == {"model", "head_dim", "task", "metric", "score", "encode_seconds"}
    assert {(row["model"], row["head_dim"]) for row in rows} >= {("tiny", 48), ("tiny", 8), ("truncate: tiny", 2)}
    assert all(row["encode_seconds"] >= 0 for row in rows) and any(row["encode_seconds"] > 0 for row in rows)
    assert (tmp_path / "reports" / "eval.png").stat().st_size > 10_000
    assert "| tiny | 48 |" in (tmp_path / "reports" / "eval.md").read_text()
    assert "| pca: tiny | 2 |" in (tmp_path / "reports" / "eval.md").read_text()

    shards = sorted((settings.cache_dir / "vectors").rglob("*.npy"))
    again = run_eval(**options)
    assert sorted((settings.cache_dir / "vectors").rglob("*.npy")) == shards  # nothing embedded twice
    assert [row.score for row in again.rows] == [row["score"] for row in rows]


def test_missing_inhouse_model_is_reported_and_the_rest_evaluated(tmp_path: Path) -> None:
    settings, eval_dir = _tiny_setup(tmp_path)
    settings = settings.model_copy(update={"model": str(tmp_path / "models" / "not-trained")})
    outcome = run_eval(
        models=["inhouse", "start"],
        tasks=["stsbenchmark"],
        eval_dir=eval_dir,
        output_dir=tmp_path / "reports",
        settings=settings,
    )
    assert "in-house model not found" in outcome.notes[0]
    assert {row.model for row in outcome.rows} == {"start: tiny"}
    assert "in-house model not found" in (tmp_path / "reports" / "eval.md").read_text()


def test_recipes_group_adds_other_trained_recipe_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, eval_dir = _tiny_setup(tmp_path)
    monkeypatch.chdir(tmp_path)  # recipe outputs are relative paths (models/jasper-<recipe>)
    make_tiny_encoder(tmp_path, {"full": 48}).save(tmp_path / "models" / "jasper-default")
    make_tiny_encoder(tmp_path, {"full": 48}).save(tmp_path / "models" / "jasper-quick")
    settings = settings.model_copy(update={"model": "models/jasper-quick"})
    options = dict(tasks=["stsbenchmark"], eval_dir=eval_dir, output_dir=tmp_path / "reports", settings=settings)
    outcome = run_eval(models=["inhouse", "recipes"], **options)
    assert list(dict.fromkeys(row.model for row in outcome.rows)) == ["jasper-quick", "jasper-default"]  # in-house once
    (tmp_path / "models" / "jasper-default" / "jasper_config.json").unlink()
    assert {row.model for row in run_eval(models=["inhouse", "recipes"], **options).rows} == {"jasper-quick"}


def test_cached_only_skips_what_is_not_cached(tmp_path: Path) -> None:
    settings, eval_dir = _tiny_setup(tmp_path)
    options = dict(models=["start"], eval_dir=eval_dir, output_dir=tmp_path / "reports", settings=settings)
    with pytest.raises(ValueError, match="nothing was scored"):
        run_eval(tasks=["stsbenchmark"], cached_only=True, **options)
    run_eval(tasks=["stsbenchmark"], **options)
    outcome = run_eval(tasks=["stsbenchmark", "tiny"], cached_only=True, **options)
    assert {row.task for row in outcome.rows} == {"STSBenchmark"}
    assert outcome.notes == ["skipped start: tiny 32-d on tiny: vectors not cached"]


def test_cli_reports_bad_task_without_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["eval", "--tasks", "nope", "--eval-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "eval failed: task 'nope'" in result.output
    assert "Traceback" not in result.output


def test_cli_rejects_unknown_model_name(tmp_path: Path) -> None:
    _, eval_dir = _tiny_setup(tmp_path)
    result = CliRunner().invoke(app, ["eval", "--models", "teacher", "--tasks", "tiny", "--eval-dir", str(eval_dir)])
    assert result.exit_code == 1
    assert "unknown model 'teacher'" in result.output


def test_mteb_adapter_accepts_both_input_styles(tiny_encoder) -> None:
    model = MTEBModel(tiny_encoder.at(16))
    texts = ["the cat sat", "protein in cells", "paris"]
    flat = model.encode(texts, task_name="SciFact")
    batched = model.encode([{"text": texts[:2]}, {"text": texts[2:]}], task_metadata=None)
    assert flat.shape == (3, 16)
    assert np.allclose(flat, batched, atol=1e-6)
