"""Data-parallel training through torchrun: 2 CPU processes, gloo, a tiny student and teacher."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from jasper_rag.encoder import FULL_HEAD, load_encoder
from jasper_rag.export import export_sentence_transformers
from tests.conftest import ROOT, TINY_WORDS, make_tiny_encoder


def write_tiny_recipe(tmp_path: Path, name: str) -> list[str]:
    """A tiny student, teacher, corpus and recipe (2 steps per stage) under ``tmp_path``; returns the texts."""
    student = make_tiny_encoder(tmp_path).save(tmp_path / "student")
    teacher = export_sentence_transformers(
        make_tiny_encoder(tmp_path, {FULL_HEAD: 24}, seed=5).save(tmp_path / "teacher-model"), tmp_path / "teacher"
    )
    texts = [" ".join(TINY_WORDS[i : i + 4 + i % 6]) for i in range(40)]
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    recipe = {
        "name": name,
        "student": str(student),
        "teachers": [str(teacher)],
        "output": str(tmp_path / "out"),
        "corpus": str(tmp_path / "corpus.jsonl"),
        "cut_fraction": 0.0,
        "reduced_dims": [8],
        "last_layers": 1,
        "teacher_batch_size": 8,
        "stages": {n: {"lr": 1e-3, "batch_size": 8, "max_steps": 2} for n in ("1", "2", "3")},
    }
    (tmp_path / "recipe.json").write_text(json.dumps(recipe))
    return texts


def test_torchrun_two_processes_train_every_stage(tmp_path: Path) -> None:
    write_tiny_recipe(tmp_path, "ddp")
    env = {
        **os.environ,
        "JASPER_RUNS_DIR": str(tmp_path / "runs"),
        "JASPER_CACHE_DIR": str(tmp_path / "cache"),
        "JASPER_DEVICE": "cpu",
        "OMP_NUM_THREADS": "1",
    }
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "jasper_rag.cli",
        "train",
        "--recipe",
        str(tmp_path / "recipe.json"),
    ]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    model = load_encoder(tmp_path / "out", device="cpu")
    assert model.config.heads == {FULL_HEAD: 24, "d8": 8}
    summary = json.loads((tmp_path / "runs" / "ddp" / "stage2" / "done.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 2
    shards = [p.name for p in (tmp_path / "cache" / "vectors").rglob("*.keys.npy")]
    assert any("rank0-" in name for name in shards) and any("rank1-" in name for name in shards)
