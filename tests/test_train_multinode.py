"""Training across machines: two torchrun "nodes" on this host (static rendezvous), each with its own
teacher-vector cache folder, sharing the runs folder and the output as a cluster shares storage."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

from jasper_rag.encoder import FULL_HEAD, load_encoder
from tests.conftest import ROOT
from tests.test_train_distributed import write_tiny_recipe


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cached_keys(cache: Path) -> list[bytes]:
    """Every text hash stored in the teacher-vector cache under ``cache``."""
    return [key.tobytes() for f in sorted((cache / "vectors").rglob("*.keys.npy")) for key in np.load(f)]


def run_on_two_nodes(tmp_path: Path, train_args: list[str]) -> None:
    """``jasper-rag train`` as two torchrun nodes of one process each, every node with its own cache folder."""
    port = str(free_port())
    launches = []
    for node in (0, 1):
        env = {
            **os.environ,
            "JASPER_RUNS_DIR": str(tmp_path / "runs"),
            "JASPER_CACHE_DIR": str(tmp_path / f"cache-node{node}"),
            "JASPER_DEVICE": "cpu",
            "OMP_NUM_THREADS": "1",
        }
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1"]
        command += ["--node_rank", str(node), "--master_addr", "127.0.0.1", "--master_port", port]
        launches.append(
            subprocess.Popen(
                [*command, "-m", "jasper_rag.cli", "train", *train_args],
                cwd=ROOT,
                env=env,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for launch in launches:
        _, stderr = launch.communicate(timeout=300)
        assert launch.returncode == 0, stderr[-3000:]


def test_two_nodes_with_separate_caches_train_and_exchange_teacher_vectors(tmp_path: Path) -> None:
    texts = write_tiny_recipe(tmp_path, "nodes")
    run_on_two_nodes(tmp_path, ["--recipe", str(tmp_path / "recipe.json"), "--teacher-vectors-only"])
    assert not (tmp_path / "out").exists()
    for node in (0, 1):
        keys = cached_keys(tmp_path / f"cache-node{node}")
        assert len(keys) == len(set(keys)) == len(set(texts))  # complete, and nothing stored twice
        names = [p.name for p in (tmp_path / f"cache-node{node}" / "vectors").rglob("*.keys.npy")]
        assert any(f"shard-rank{node}-" in n for n in names)  # its own half, embedded here
        assert any(f"gathered-rank{node}-" in n for n in names)  # the other half, received
        assert not any(f"shard-rank{1 - node}-" in n for n in names)  # never embedded here

    run_on_two_nodes(tmp_path, ["--recipe", str(tmp_path / "recipe.json")])
    model = load_encoder(tmp_path / "out", device="cpu")
    assert model.config.heads == {FULL_HEAD: 24, "d8": 8}
    summary = json.loads((tmp_path / "runs" / "nodes" / "stage1" / "done.json").read_text())
    assert summary["processes"] == 2
    for node in (0, 1):  # training found every teacher vector cached: nothing embedded or exchanged again
        assert len(cached_keys(tmp_path / f"cache-node{node}")) == len(set(texts))
