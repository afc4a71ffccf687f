"""Sizing from bench rows: every figure is arithmetic on the reports given, and a missing report is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jasper_rag.bench.sizing import GIB, SizingInputError, SizingPlan, build_sizing
from jasper_rag.cli import app


def search_row(size: int, head: str, dim: int, index: str, bytes_per_vector: float, p50: float) -> dict:
    return {
        "size": size,
        "head": head,
        "dim": dim,
        "index": index,
        "params": index,
        "bytes_per_vector": bytes_per_vector,
        "single_p50_ms": p50,
        "recall_at_10": 1.0 if index == "Flat" else 0.97,
    }


def write_reports(folder: Path, ray: bool) -> None:
    heads = {"full": 1152, "d256": 256, "d128": 128, "d64": 64}
    rows = [search_row(1000, h, d, "Flat", 4 * d + 8, 1.0) for h, d in heads.items()]
    rows += [
        search_row(10_000, "full", 1152, "Flat", 4616, 10.0),
        search_row(10_000, "full", 1152, "HNSW32", 4888, 0.5),
    ]
    bench = {
        "generated_at": "then",
        "machine": {"cpu": "test cpu"},
        "default_backend": "torch",
        "search": rows,
        "ingestion": [{"backend": "torch", "ingest_chunks_per_s": 40.0}],
    }
    sizes = {"sqlite": 100.0, "tantivy": 10.0}
    hybrid = {
        "generated_at": "then",
        "sizes": [{"size": 100_000, "mean_words": 100, "build": {"sizes_mib": sizes, "commit_s_total": 100.0}}],
    }
    (folder / "bench.json").write_text(json.dumps(bench))
    (folder / "hybrid.json").write_text(json.dumps(hybrid))
    if ray:
        payload = {
            "generated_at": "then",
            "local": {"chunks_per_s": 40.0},
            "ray": [{"workers": 1, "chunks_per_s": 30.0}, {"workers": 2, "chunks_per_s": 45.0}],
        }
        (folder / "ray-ingest.json").write_text(json.dumps(payload))


def test_layouts_and_plan_are_arithmetic_on_the_rows(tmp_path: Path) -> None:
    write_reports(tmp_path, ray=True)
    plan = SizingPlan(chunks=10_000_000, node_memory_gib=10.0, vector_share=0.5, replicas=2, ingest_hours=1.0)
    payload = build_sizing(tmp_path, plan)

    default = next(r for r in payload["layouts"] if r["layout"].startswith("every head exact"))
    per_chunk = 4616 + 1032 + 520 + 264  # each head's Flat bytes per vector, the full head's from its largest size
    assert default["vector_bytes_per_chunk"] == per_chunk
    assert default["chunks_per_node"] == int(5 * GIB / per_chunk)
    assert default["plan_nodes"] == -(-per_chunk * 10_000_000 * 2 // (5 * GIB))
    assert default["scan_p50_ms_at_node_capacity"] == pytest.approx(10.0 * default["chunks_per_node"] / 10_000)
    hnsw = next(r for r in payload["layouts"] if "HNSW32" in r["layout"])
    assert hnsw["scan_p50_ms_at_node_capacity"] is None  # not a scan: never extrapolated linearly
    assert payload["per_chunk"]["sql_bytes"] == pytest.approx(100 * 2**20 / 100_000)
    assert payload["per_chunk"]["commit_chunks_per_s"] == pytest.approx(1000.0)

    ingest = payload["ingest"]
    needed = 10_000_000 / 3600
    assert ingest["needed_chunks_per_s"] == pytest.approx(needed)
    assert ingest["writers"] == 3  # 2,778 chunks/s over one writer's 1,000
    assert payload["ray"]["efficiency"] == pytest.approx(0.75)
    assert ingest["ray_workers"] == -(-needed // (30.0 * 0.75))
    assert (tmp_path / "sizing.json").exists() is False  # build_sizing writes nothing


def test_command_writes_the_report_and_says_when_ray_rows_are_missing(tmp_path: Path) -> None:
    write_reports(tmp_path, ray=False)
    done = CliRunner().invoke(app, ["sizing", "--reports", str(tmp_path), "--chunks", "1000000"])
    assert done.exit_code == 0, done.output
    text = (tmp_path / "sizing.md").read_text()
    assert "1,000,000 chunks" in text and "no `ray-ingest.json` yet" in text
    assert json.loads((tmp_path / "sizing.json").read_text())["plan"]["chunks"] == 1_000_000


def test_missing_or_broken_report_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(SizingInputError, match=r"bench\.json not found"):
        build_sizing(tmp_path, SizingPlan())
    write_reports(tmp_path, ray=False)
    (tmp_path / "hybrid.json").write_text("{not json")
    done = CliRunner().invoke(app, ["sizing", "--reports", str(tmp_path)])
    assert done.exit_code == 1 and "hybrid.json: not a readable report" in done.output
    assert "Traceback" not in done.output
