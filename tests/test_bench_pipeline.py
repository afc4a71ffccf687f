"""Ingestion and training benches on the tiny encoder; reports and the CLI from a payload."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from jasper_rag.bench.ingestion import IngestSpeed, measure_ingestion, write_documents
from jasper_rag.bench.report import render_from_json, write_reports
from jasper_rag.bench.stats import Timed
from jasper_rag.bench.training import measure_training
from jasper_rag.cli import app
from jasper_rag.config import Settings
from jasper_rag.embedding import normalize_rows
from jasper_rag.encoder import load_encoder

WORDS = "the cat sat on the mat . a dog on the sofa . protein cells and cancer risk in a study .".split()


def documents(count: int) -> list[str]:
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(WORDS, size=60)) for _ in range(count)]


def test_ingestion_is_compared_with_raw_encoding_of_the_same_chunks(tiny_encoder) -> None:
    settings = Settings(chunk_tokens=24, chunk_overlap=4, batch_size=8, ingest_commit_chunks=16)
    [speed] = measure_ingestion(tiny_encoder, documents(6), settings, repeats=2)
    assert speed.backend == "torch" and speed.repeats == 2
    assert speed.documents == 6 and speed.chunks >= 6 and speed.heads == 3
    assert min(speed.ingest.wall, speed.raw_unsorted.wall, speed.raw_sorted.wall) > 0
    assert speed.ingest.cpu > 0  # this process's CPU and the parse worker's
    row = speed.to_json()
    assert row["overhead_wall"] == speed.ingest.wall / speed.raw_sorted.wall - 1
    assert 1 <= row["padding"]["sorted_all_at_once"] <= row["padding"]["arrival_order"]
    assert row["raw_unsorted_chunks_per_s"] == speed.chunks / speed.raw_unsorted.wall


def test_ingestion_bench_returns_the_encoder_to_its_backend(tiny_encoder, tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    settings = Settings(chunk_tokens=24, chunk_overlap=4, batch_size=8, cache_dir=tmp_path / "cache")
    speeds = measure_ingestion(tiny_encoder, documents(3), settings, backends=("onnx", "torch"))
    assert [speed.backend for speed in speeds] == ["onnx", "torch"]
    assert speeds[0].chunks == speeds[1].chunks and tiny_encoder.backend == "torch"


def test_write_documents_one_txt_per_text(tmp_path) -> None:
    paths = write_documents(["first text", "second text"], tmp_path / "docs")
    assert [path.name for path in paths] == ["doc-00000.txt", "doc-00001.txt"]
    assert paths[1].read_text() == "second text\n"


def test_training_speed_per_stage(tmp_path, tiny_encoder) -> None:
    saved = tiny_encoder.save(tmp_path / "model")
    texts = documents(3 * 4)
    targets = normalize_rows(np.random.default_rng(1).standard_normal((len(texts), 48)))
    speeds = measure_training(lambda: load_encoder(saved, device="cpu"), texts, targets, [16, 8], 4, 2, 32)
    assert [speed.stage for speed in speeds] == [1, 2, 3]
    assert all(speed.timed_steps == 2 and speed.examples_per_s.min > 0 for speed in speeds)
    assert speeds[0].trainable_parameters < speeds[1].trainable_parameters < speeds[2].trainable_parameters


def payload() -> dict:
    spread = {"min": 1.0, "median": 2.0, "max": 3.0}
    padding = {"arrival_order": 1.3, "sorted_all_at_once": 1.02}

    def speed(name: str, role: str, rate: float) -> dict:
        rates = {"min": rate, "median": rate, "max": rate}
        return {
            "encoder": name,
            "role": role,
            "short_per_s": rates,
            "short_per_cpu_s": rates,
            "passages_per_s": rates,
            "passages_per_cpu_s": rates,
            "query_latency": {"p50_ms": 5.0, "p95_ms": 7.0, "calls": 10},
            "flops_per_short": 1e9 if role != "ensemble" else None,
            "flops_per_passage": 1e9 if role != "ensemble" else None,
        }

    return {
        "generated_at": "2026-01-01T00:00:00+00:00",
        "seconds": 12.0,
        "machine": {
            "cpu": "Test CPU",
            "cores": 2,
            "torch_threads": 2,
            "faiss_threads": 2,
            "versions": {"torch": "2"},
            "load_average": [0.5, 0.5, 0.5],
            "peak_gflops": 100.0,
        },
        "load_average_after": [0.7, 0.6, 0.5],
        "student": "tiny",
        "notes": ["a note"],
        "encoding": [
            speed("student (torch eager)", "student", 13.0),
            speed("student (onnx int8)", "student", 30.0),
            speed("jasper-tiny (torch eager)", "other student", 20.0),
            speed("jasper-tiny (onnx int8)", "other student", 40.0),
            speed("ensemble (a + b)", "ensemble", 1.0),
        ],
        "quality": [
            {"variant": "torch eager", "task": "STS", "metric": "spearman", "score": 82.0},
            {"variant": "onnx int8", "task": "STS", "metric": "spearman", "score": 81.9},
            {"variant": "jasper-tiny torch eager", "task": "STS", "metric": "spearman", "score": 80.0},
            {"variant": "jasper-tiny onnx int8", "task": "STS", "metric": "spearman", "score": 79.5},
        ],
        "qualifying_variants": ["torch eager", "onnx int8"],
        "search": [
            {
                "size": 10000,
                "real_vectors": 10000,
                "head": "full",
                "dim": 1152,
                "index": "Flat",
                "params": "",
                "build_s": 0.1,
                "bytes_per_vector": 4616.0,
                "recall_at_10": 1.0,
                "single_p50_ms": 1.0,
                "single_p95_ms": 2.0,
                "batch_ms_per_query": spread,
            }
        ],
        "compact": [
            {
                "size": 10000,
                "full_dim": 1152,
                "compact_dim": 385,
                "bytes_per_vector": 1548.0,
                "full_flat_bytes_per_vector": 4616.0,
                "identical_rankings": 1.0,
                "identical_sets": 1.0,
                "bytes_ratio": 1548 / 4616,
            }
        ],
        "ingestion": [
            IngestSpeed("torch", 5, 10, 4, 3, Timed(1.11, 1.05), Timed(2.0, 2.0), Timed(1.0, 1.0), padding).to_json(),
            IngestSpeed(
                "onnx-int8", 5, 10, 4, 3, Timed(0.4, 0.4), Timed(0.5, 0.5), Timed(0.38, 0.38), padding
            ).to_json(),
        ],
        "training": [
            {
                "stage": 1,
                "batch_size": 32,
                "max_length": 128,
                "timed_steps": 3,
                "trainable_parameters": 10,
                "examples_per_s": spread,
            }
        ],
        "training_recipe": "quick",
    }


def test_reports_come_from_the_json(tmp_path) -> None:
    files = write_reports(payload(), tmp_path / "reports")
    assert [path.name for path in files] == ["bench.json", "bench.md", "bench.png"]
    markdown = (tmp_path / "reports" / "bench.md").read_text()
    assert markdown.startswith("# Performance") and "![bench](bench.png)" in markdown
    assert "student (onnx int8): 30.0x (eager: 13.0x)" in markdown and "| not met |" in markdown
    assert "jasper-tiny at ONNX int8 | 40.0x (eager: 20.0x); int8 vs eager STS -0.50 | met |" in markdown
    assert "10.0% CPU" not in markdown and "torch: 11.0% wall, 5.0% CPU" in markdown
    assert "| torch | 9.0 (1.80x) | 5.0 (1.00x) | 10.0 (2.00x) |" in markdown
    assert "5.00x (onnx-int8 end to end) | met" in markdown
    default_torch = write_reports({**payload(), "default_backend": "torch"}, tmp_path / "torch")[1].read_text()
    assert "1.80x (torch end to end; fastest onnx-int8: 5.00x) | not met" in default_torch
    assert "per real token in the encoder's batches: arrival order 1.300, sorted all at once 1.020." in markdown
    assert "385-d, 0.335 of the bytes" in markdown
    assert "untested on hardware" in markdown
    data = json.loads((tmp_path / "reports" / "bench.json").read_text())
    data["student"] = "changed"
    (tmp_path / "reports" / "bench.json").write_text(json.dumps(data))
    render_from_json(tmp_path / "reports" / "bench.json")
    assert "Student: changed." in (tmp_path / "reports" / "bench.md").read_text()


def test_cli_renders_and_reports_errors_without_tracebacks(tmp_path) -> None:
    runner = CliRunner()
    (tmp_path / "bench.json").write_text(json.dumps(payload()))
    done = runner.invoke(app, ["bench", "--render-only", "--output-dir", str(tmp_path)])
    assert done.exit_code == 0 and (tmp_path / "bench.md").is_file()
    missing = runner.invoke(app, ["bench", "--render-only", "--output-dir", str(tmp_path / "nothing")])
    assert missing.exit_code == 1 and "bench failed" in missing.output and "bench.json" in missing.output
    unknown = runner.invoke(app, ["bench", "--only", "speed", "--output-dir", str(tmp_path)])
    assert unknown.exit_code == 1 and "unknown bench sections ['speed']" in unknown.output


def test_gpu_check_runs_its_cpu_half_without_a_gpu(tmp_path, tiny_encoder) -> None:
    from jasper_rag.bench.gpu_check import run_check

    saved = tiny_encoder.save(tmp_path / "model")
    result = run_check(str(saved), vectors=3000, dim=32, queries=20, steps=1, max_length=16, ivf="IVF16,PQ8")
    assert result["cuda"] is None and result["note"] == "no CUDA device: CPU half only"
    assert [row["device"] for row in result["training"]] == ["cpu"]
    assert result["faiss"][0]["recall_at_10"] == 1.0 and result["faiss"][-1]["factory"] == "IVF16,PQ8"
    assert 0 < result["faiss"][-1]["recall_at_10"] <= 1
