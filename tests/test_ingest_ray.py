"""``ingest --engine ray`` against the local engine, on one local Ray (2 CPUs) shared by the module: the same
store (documents, entries, vectors), per-file failures and limits, an incremental rerun through the CLI with
``--workers 2``, and the one line when Ray is missing."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from jasper_rag.cli import app
from jasper_rag.config import get_settings
from jasper_rag.ingest.pipeline import ingest_paths
from jasper_rag.store import DocumentStatus
from tests.conftest import TINY_WORDS
from tests.ingest_support import load_tiny, make_store, save_tiny_model, small_settings

MAX_FILE_MB = 0.01  # about 10 KB: huge.txt goes over it
FAILED = {"corrupt.pdf": "corrupt PDF", "huge.txt": "too large", "link.txt": "symlink pointing outside"}


def words(rng: np.random.Generator, count: int) -> str:
    return " ".join(rng.choice(TINY_WORDS, count))


def write_corpus(folder: Path, outside: Path) -> None:
    """Text, Markdown and FAQ files, and one file per kind of failure (parse error, size limit, symlink out)."""
    rng = np.random.default_rng(0)
    (folder / "sub").mkdir(parents=True)
    for number in range(5):
        (folder / f"note-{number}.txt").write_text(words(rng, 40 + 60 * number) + "\n")
    (folder / "sub" / "guide.md").write_text(f"# The cat\n\n{words(rng, 80)}\n\n## The dog\n\n{words(rng, 80)}\n")
    pairs = [{"question": words(rng, 6), "answer": words(rng, 12)} for _ in range(3)]
    (folder / "faq.jsonl").write_text("".join(json.dumps(pair) + "\n" for pair in pairs))
    (folder / "corrupt.pdf").write_bytes(b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>\ngarbage" * 3)
    (folder / "huge.txt").write_text(words(rng, 4000) + "\n")
    outside.write_text(words(rng, 30) + "\n")
    (folder / "link.txt").symlink_to(outside)


def snapshot(store) -> tuple[list[tuple], dict[tuple, tuple]]:
    """The documents (without times), and each entry of each (kind, head) index by (kind, head, path,
    ordinal): its fields and its vector."""
    store.refresh()
    documents = sorted((d.path, d.file_type, d.status, d.error, d.content_hash, d.entries) for d in store.documents())
    entries = {}
    for kind, head in store.index_states():
        index = store.index(kind, head)
        ids = index.ids()
        views = store.fetch(ids)
        assert len(views) == len(ids)
        for view, vector in zip(views, index.reconstruct(ids), strict=True):
            fields = (view.text, view.page, view.char_start, view.char_end, view.heading, view.answer)
            entries[(kind, head, view.path, view.ordinal)] = (fields, vector)
    return documents, entries


def assert_same_store(local, ray) -> None:
    local_documents, local_entries = snapshot(local)
    ray_documents, ray_entries = snapshot(ray)
    assert ray_documents == local_documents
    assert ray_entries.keys() == local_entries.keys()
    for key, (fields, vector) in local_entries.items():
        assert ray_entries[key][0] == fields, key
        np.testing.assert_allclose(ray_entries[key][1], vector, atol=1e-5, err_msg=str(key))


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray with 2 CPUs for the module (the engine uses a Ray already up), shut down at the end."""
    ray = pytest.importorskip("ray")
    from jasper_rag.ingest.ray_engine import start_ray

    start_ray(2)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, local_ray, one_torch_thread):
    """The corpus ingested by the local engine into one store and by Ray (1 worker) into another; the
    driver's own encoder refuses to embed, so the vectors can only come from the Ray workers."""
    from jasper_rag.ingest.ray_engine import ingest_paths_ray

    root = tmp_path_factory.mktemp("ray-ingest")
    model_dir = save_tiny_model(root / "tiny")
    folder = root / "docs"
    write_corpus(folder, root / "outside.txt")
    settings = small_settings(ingest_max_file_mb=MAX_FILE_MB)
    local, ray = make_store(root / "local"), make_store(root / "ray")
    local_summary = ingest_paths([folder], load_tiny(model_dir), local, settings, progress=False)
    driver = load_tiny(model_dir)

    def refuse(*args, **kwargs):
        raise AssertionError("the driver embedded texts: the Ray workers should have")

    driver.encode_heads = refuse
    ray_summary = ingest_paths_ray([folder], driver, str(model_dir), ray, settings, workers=1, progress=False)
    yield {"root": root, "model": model_dir, "folder": folder, "settings": settings, "local": local, "ray": ray,
           "summaries": (local_summary, ray_summary)}  # fmt: skip
    local.close()
    ray.close()


def test_ray_engine_builds_the_local_engines_store(ingested):
    assert_same_store(ingested["local"], ingested["ray"])
    local_summary, ray_summary = ingested["summaries"]
    assert ray_summary.embedded == local_summary.embedded and ray_summary.embedded["faq"] == 3
    assert ray_summary.embedded["chunk"] > 10


def test_failed_files_are_recorded_and_the_others_go_in(ingested):
    _, summary = ingested["summaries"]
    outcomes = {Path(outcome.path).name: outcome for outcome in summary.outcomes}
    assert summary.exit_code == 3
    assert {name for name, outcome in outcomes.items() if outcome.status == DocumentStatus.FAILED} == set(FAILED)
    for name, reason in FAILED.items():
        assert reason in outcomes[name].reason, outcomes[name]
    assert [outcome.status for name, outcome in outcomes.items() if name not in FAILED] == [DocumentStatus.INGESTED] * 7


def test_rerun_with_two_workers_redoes_only_the_changed_file(ingested, fresh_settings):
    """Through the CLI with --workers 2: the changed file is ingested again, unchanged ones are skipped (failed
    ones retried, as locally), and the store still matches the local engine's after the same change."""
    folder, root, settings = ingested["folder"], ingested["root"], ingested["settings"]
    changed = folder / "note-1.txt"
    changed.write_text(changed.read_text() + "the dog sat on the sofa\n")
    store = ["--db", f"sqlite:///{root / 'ray' / 'meta.db'}", "--index-dir", str(root / "ray" / "indexes")]
    command = ["ingest", str(folder), "--model", str(ingested["model"]), "--engine", "ray", "--workers", "2", "-q"]
    same = ("chunk_tokens", "chunk_overlap", "batch_size", "ingest_commit_chunks", "ingest_max_file_mb")
    env = {f"JASPER_{name.upper()}": str(getattr(settings, name)) for name in same}
    get_settings.cache_clear()  # the CLI reads the settings from env
    result = CliRunner().invoke(app, [*command, *store], env=env)
    assert result.exit_code == 3, result.output
    counts = {status: int(count) for status, count in re.findall(r"^  ([a-z ]+?) +(\d+)$", result.output, re.M)}
    assert counts == {"failed": 3, "ingested": 1, "unchanged": 6}, result.output
    ingest_paths([folder], load_tiny(ingested["model"]), ingested["local"], ingested["settings"], progress=False)
    assert_same_store(ingested["local"], ingested["ray"])


def test_a_worker_with_another_model_stops_the_run_with_one_error(ingested, tmp_path):
    """A node whose model folder holds other weights than the driver's: the run stops, nothing is committed."""
    from jasper_rag.ingest.ray_engine import RayIngestError, ingest_paths_ray

    other = save_tiny_model(tmp_path / "other", seed=1)
    store = make_store(tmp_path / "store")
    try:
        with pytest.raises(RayIngestError, match=r"is not the driver's .*give every node the same model"):
            ingest_paths_ray([ingested["folder"]], load_tiny(ingested["model"]), str(other), store, progress=False)
        assert store.documents() == []
    finally:
        store.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--engine", "spark"], "--engine must be local or ray"),
        (["--workers", "2"], "--workers sets the Ray workers: it needs --engine ray"),
        (["--engine", "ray", "--watch"], "--watch runs on the local engine"),
    ],
)
def test_engine_options_that_do_not_go_together_stop_with_one_line(tmp_path, options, message):
    result = CliRunner().invoke(app, ["ingest", str(tmp_path), *options, "--db", f"sqlite:///{tmp_path / 'm.db'}"])
    assert result.exit_code == 1 and message in result.output
    assert result.output.strip().count("\n") == 0, result.output


def test_missing_ray_says_which_extra_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    result = CliRunner().invoke(app, ["ingest", str(tmp_path), "--engine", "ray", "--model", str(tmp_path / "none")])
    assert result.exit_code == 1, result.output
    assert result.output.strip() == (
        "ingest failed: --engine ray needs Ray Data (import of ray halted; None in sys.modules): "
        "pip install 'jasper-rag[ray]'"
    )


def test_bench_report_renders_every_run_from_the_json():
    from jasper_rag.bench.ray_ingest import full_markdown

    run = {"wall_s": 10.0, "wall_spread_s": [9.0, 11.0], "chunks_per_s": 50.0}
    payload = {
        "generated_at": "then",
        "seconds": 60.0,
        "machine": {"cpu": "cpu", "cores": 2, "memory_gib": 8.0, "versions": {"ray": "2"}, "load_average": [1, 1, 1]},
        "load_average_after": [1, 1, 1],
        "model": "m",
        "backend": "torch",
        "documents": 500,
        "chunks": 500,
        "repeats": 3,
        "ray_start_s": 4.2,
        "local": run,
        "ray": [{"workers": 2, **run, "wall_s": 20.0, "chunks_per_s": 25.0, "ratio_to_local": 0.5}],
    }
    text = full_markdown(payload)
    assert "| local |  | 10.0 (9.0–11.0) | 50.0 | 1.00x |" in text
    assert "| ray | 2 | 20.0 (9.0–11.0) | 25.0 | 0.50x |" in text and "4.2 s" in text


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("head-node", "expected host:port"),
        ("127.0.0.1:notaport", "expected host:port"),
        ("127.0.0.1:1", "cannot reach"),
    ],
)
def test_a_ray_address_that_cannot_work_fails_fast(address, message):
    from jasper_rag.ingest.ray_engine import RayIngestError, check_reachable

    with pytest.raises(RayIngestError, match=message):
        check_reachable(address, timeout=2.0)


def test_a_listening_ray_address_passes_the_check():
    import socket

    from jasper_rag.ingest.ray_engine import check_reachable

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        check_reachable(f"ray://127.0.0.1:{server.getsockname()[1]}")
        check_reachable("auto")
