"""make eval's backend section: every backend x head scored against eager, cached apart, with a verdict."""

from __future__ import annotations

from pathlib import Path

import pytest

from jasper_rag.backend_choice import choice_file, recorded_choice
from jasper_rag.backends import QUALITY_TOLERANCE
from jasper_rag.config import BACKENDS, Settings, default_backend
from jasper_rag.eval.backends import BackendRow, BackendSection, evaluate_backends
from jasper_rag.eval.report import backend_section
from jasper_rag.eval.tasks import RetrievalTask, STSTask
from tests.test_eval_data import write_beir, write_sts


@pytest.fixture
def tasks(tmp_path: Path) -> list:
    return [
        RetrievalTask.from_folder(write_beir(tmp_path / "tiny")),
        STSTask.from_file(write_sts(tmp_path / "sts.csv"), name="sts"),
    ]


def section(scores: dict[str, float], speed: dict[str, float], default: str) -> BackendSection:
    """One head on one task; ``scores``: backend -> score (eager is 'torch')."""
    rows = [
        BackendRow(
            backend, "full", 48, "t", "ndcg_at_10", score, None if backend == "torch" else score - scores["torch"]
        )
        for backend, score in scores.items()
    ]
    return BackendSection("tiny", rows, speed, default)


def test_every_backend_and_head_is_scored_against_eager_and_cached_apart(
    tiny_encoder, tasks, tmp_path, one_torch_thread
) -> None:
    settings = Settings(cache_dir=tmp_path / "cache")
    result = evaluate_backends(tiny_encoder, "tiny", tasks, settings)
    assert result.backends == list(BACKENDS) and set(result.speed) == set(BACKENDS)
    keys = {(row.backend, row.head, row.task) for row in result.rows}
    assert keys == {(b, h, t.name) for b in BACKENDS for h in ("full", "d16", "d8") for t in tasks}
    by_key = {(row.backend, row.head, row.task): row for row in result.rows}
    for (backend, head, task), row in by_key.items():
        eager = by_key["torch", head, task]
        assert (
            row.delta is None if backend == "torch" else row.delta == pytest.approx(row.score - eager.score, abs=0.011)
        )
    assert all(abs(row.delta) < 0.01 for row in result.rows if row.backend == "onnx")  # fp32: the same vectors
    assert result.qualifies("torch") and result.qualifies("onnx")
    shipped = default_backend({"device": settings.device})  # 'auto' on the CPU: the choice recorded for the model
    assert result.fastest in BACKENDS
    assert result.default == (
        recorded_choice(choice_file(tiny_encoder, settings.cache_dir)) if shipped == "auto" else shipped
    )
    # eager shares the main table's cache; each ONNX backend has its own folders (name + export digest)
    folders = sorted(path.name for path in (tmp_path / "cache" / "vectors").iterdir())
    assert len(folders) == 3 * 3 and sum("_onnx-int8-" in name for name in folders) == 3
    assert sum("_onnx-" in name and "int8" not in name for name in folders) == 3
    assert tiny_encoder.backend == "torch"

    again = evaluate_backends(tiny_encoder, "tiny", tasks, settings, heads=["d8"], cached_only=True)
    assert not again.notes or again.notes == [again.default_check()]
    assert {(row.backend, row.head, row.task): row.score for row in again.rows} == {
        key: row.score for key, row in by_key.items() if key[1] == "d8"
    }


def test_cached_only_notes_what_is_missing_and_leaves_the_default_unchecked(tiny_encoder, tasks, tmp_path) -> None:
    settings = Settings(cache_dir=tmp_path / "cache")
    result = evaluate_backends(tiny_encoder, "tiny", tasks[1:], settings, heads=["d8"], cached_only=True)
    assert not result.rows and not result.speed
    assert any("onnx-int8 d8 on sts: vectors not cached" in note for note in result.notes)
    assert "not scored and timed" in result.default_check()


def test_verdicts_and_the_default_check() -> None:
    tol = QUALITY_TOLERANCE
    right = section(
        {"torch": 60.0, "onnx": 60.0, "onnx-int8": 60.0 - 2 * tol}, {"torch": 1, "onnx": 2, "onnx-int8": 4}, "onnx"
    )
    assert [right.qualifies(b) for b in BACKENDS] == [True, True, False]
    assert right.fastest == "onnx" and right.default_check() is None
    gain = section(
        {"torch": 60.0, "onnx": 60.0, "onnx-int8": 60.0 + 1}, {"torch": 1, "onnx": 2, "onnx-int8": 4}, "onnx"
    )
    assert gain.fastest == "onnx-int8" and "faster than the default backend 'onnx'" in gain.default_check()
    stale = section({"torch": 60.0, "onnx": 60.0 - tol - 0.01}, {"torch": 1, "onnx": 2}, "onnx")
    assert not stale.qualifies("onnx") and "'onnx' (Settings.backend) no longer qualifies" in stale.default_check()
    assert "make 'torch' the default" in stale.default_check()
    edge = section({"torch": 60.0, "onnx": 60.0 - tol}, {"torch": 1, "onnx": 2}, "onnx")
    assert edge.qualifies("onnx")  # within = at most tol below


def test_report_section_shows_scores_deltas_speed_verdict_and_warning() -> None:
    tol = QUALITY_TOLERANCE
    good = section(
        {"torch": 60.0, "onnx": 60.0, "onnx-int8": 59.0}, {"torch": 10.0, "onnx": 12.5, "onnx-int8": 30.0}, "onnx"
    )
    text = "\n".join(backend_section(good))
    assert "## Backends" in text and "| onnx-int8 | full | 48 | 59.00 | -1.00 |" in text
    assert "| torch | full | 48 | 60.00 |  |" in text and "| onnx-int8 | 30.0 | -1.00 | no |" in text
    assert "Fastest qualifying backend: **onnx**, the default" in text and "Warning" not in text
    bad = section({"torch": 60.0, "onnx": 60.0 - 2 * tol}, {"torch": 10.0, "onnx": 12.5}, "onnx")
    assert "**Warning: the default backend 'onnx' (Settings.backend) no longer qualifies" in "\n".join(
        backend_section(bad)
    )
