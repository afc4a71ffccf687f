"""Keeping a store in sync: `jasper-rag remove`, `list` and `ingest --watch`, with a tiny encoder."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jasper_rag.cli import app
from jasper_rag.cli_support import setup_logging
from jasper_rag.ingest.lifecycle import list_documents, remove_paths
from jasper_rag.ingest.pipeline import ingest_paths
from jasper_rag.ingest.watch import Watcher
from jasper_rag.store import Store
from jasper_rag.store.doctor import check
from tests.ingest_support import load_tiny, save_tiny_model, small_settings

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FILES = {
    "a.txt": "the cat sat on the mat. " * 3,
    "sub/b.txt": "the dog ran on the road. " * 3,
    "sub/deep/c.md": "# fruit\n\napple banana fruit. " * 3,
    "faq.csv": "question,answer\nwhat is the capital of france,paris\n",
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def encoder(model_dir):
    return load_tiny(model_dir)


def write_files(folder: Path, files: dict[str, str]) -> None:
    for name, body in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(body)


def cli_store(tmp_path: Path) -> tuple[list[str], Callable[[], Store]]:
    db, index_dir = f"sqlite:///{tmp_path / 'meta.db'}", tmp_path / "indexes"
    return ["--db", db, "--index-dir", str(index_dir)], lambda: Store(db, index_dir)


def vectors_by_path(store: Store) -> dict[str, set[int]]:
    """Entry ids per document path, from every (kind, head) FAISS index."""
    store.refresh()
    found: dict[str, set[int]] = {}
    for kind, head in store.index_states():
        for view in store.fetch(store.index(kind, head).ids()):
            found.setdefault(view.path, set()).add(view.id)
    return found


def lexical_hits(store: Store, query: str) -> set[str]:
    store.refresh()
    _, ids = store.lexical().search([query], 10)
    return {view.path for view in store.fetch(i for i in ids[0] if i >= 0)}


def test_remove_a_file_then_a_folder_takes_every_vector_and_row(tmp_path, encoder, model_dir):
    folder = tmp_path / "docs"
    write_files(folder, FILES)
    common, open_store = cli_store(tmp_path)
    store = open_store()
    assert ingest_paths([folder], encoder, store, small_settings(), progress=False).exit_code == 0
    a, b, c = (str(folder / name) for name in ("a.txt", "sub/b.txt", "sub/deep/c.md"))
    assert lexical_hits(store, "cat") == {a} and lexical_hits(store, "dog") == {b}

    removal = remove_paths(store, [folder / "a.txt"])
    assert list(removal.removed) == [a] and removal.unknown == []
    store.refresh()
    assert a not in {doc.path for doc in store.documents()} and a not in vectors_by_path(store)
    assert lexical_hits(store, "cat") == set()
    assert check(store).consistent
    store.close()

    result = CliRunner().invoke(app, ["remove", str(folder / "sub"), str(folder / "nope.txt"), *common])
    assert result.exit_code == 3, result.output
    assert f"removed {b}" in result.output and f"removed {c}" in result.output
    assert f"not in the store: {folder / 'nope.txt'}" in result.output
    store = open_store()
    assert [doc.path for doc in store.documents()] == [str(folder / "faq.csv")]
    assert set(vectors_by_path(store)) == {str(folder / "faq.csv")}
    assert lexical_hits(store, "dog apple banana") == set()
    assert {kind: store.index(kind, "full").ntotal for kind in store.kinds()} == {"chunk": 0, "faq": 1}
    assert check(store).consistent
    store.close()
    result = CliRunner().invoke(app, ["remove", str(folder / "sub"), *common])
    assert result.exit_code == 3 and "not in the store" in result.output
    result = CliRunner().invoke(app, ["doctor", *common])
    assert result.exit_code == 0, result.output


def test_list_shows_documents_and_the_reasons_of_failed_ones(tmp_path, encoder):
    folder = tmp_path / "docs"
    write_files(folder, FILES)
    (folder / "sub" / "broken.pdf").write_bytes(b"not a pdf at all")
    common, open_store = cli_store(tmp_path)
    store = open_store()
    ingest_paths([folder], encoder, store, small_settings(), progress=False)
    documents = list_documents(store)
    store.close()
    assert [Path(doc.path).name for doc in documents] == ["a.txt", "faq.csv", "b.txt", "broken.pdf", "c.md"]
    broken = next(doc for doc in documents if doc.path.endswith("broken.pdf"))
    assert broken.status == "failed" and "corrupt PDF" in broken.reason and broken.entries == 0
    assert all(doc.reason is None and doc.entries > 0 for doc in documents if doc is not broken)

    runner = CliRunner()
    table = runner.invoke(app, ["list", *common])
    assert table.exit_code == 0, table.output
    assert "reason: corrupt PDF" in table.output and "5 documents: 4 ingested, 1 failed" in table.output
    failed = runner.invoke(app, ["list", "--status", "failed", "--json", *common])
    rows = json.loads(failed.output)
    assert [row["path"] for row in rows] == [str(folder / "sub" / "broken.pdf")]
    assert rows[0]["size_bytes"] == 16 and rows[0]["updated"].endswith("+00:00") and rows[0]["type"] == "pdf"
    under = json.loads(runner.invoke(app, ["list", str(folder / "sub"), "--json", *common]).output)
    assert [Path(row["path"]).name for row in under] == ["b.txt", "broken.pdf", "c.md"]
    wrong = runner.invoke(app, ["list", "--status", "done", *common])
    assert wrong.exit_code == 1 and "--status must be one of" in wrong.output


def wait_for(condition: Callable[[], bool], watcher: threading.Thread | Running, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert watcher.is_alive(), "the watcher stopped"
        assert time.monotonic() < deadline, "the store did not follow the folder in time"
        time.sleep(0.1)


def test_watch_follows_added_changed_and_removed_files(tmp_path, encoder, caplog):
    setup_logging(verbose=False)  # an earlier CliRunner test left logging on its closed stream
    logging.getLogger().addHandler(caplog.handler)  # which setup_logging took away
    folder = tmp_path / "docs"
    write_files(folder, {"a.txt": FILES["a.txt"], "sub/b.txt": FILES["sub/b.txt"]})
    _, open_store = cli_store(tmp_path)
    watcher = Watcher(folder, open_store(), encoder, small_settings(), debounce=0.5)
    syncs: list[dict[str, str]] = []
    stop = threading.Event()
    thread = threading.Thread(
        target=watcher.run, args=(stop, lambda s: syncs.append({o.path: o.status for o in s.outcomes}))
    )
    thread.start()
    reader = open_store()

    def state() -> dict[str, str]:
        return {Path(doc.path).relative_to(folder).as_posix(): doc.status for doc in reader.documents()}

    try:
        wait_for(lambda: state() == {"a.txt": "ingested", "sub/b.txt": "ingested"}, thread)
        before = vectors_by_path(reader)[str(folder / "a.txt")]
        for number in range(5):  # a burst: one sync for all of it
            (folder / f"new{number}.txt").write_text(f"the red car number {number} is fast. ")
        (folder / "a.txt").write_text("the blue river runs to the city. ")
        (folder / "sub" / "b.txt").unlink()
        (folder / ".hidden.txt").write_text("never ingested")
        expected = {"a.txt": "ingested", **{f"new{n}.txt": "ingested" for n in range(5)}}
        wait_for(lambda: state() == expected, thread)
        assert not vectors_by_path(reader)[str(folder / "a.txt")] & before
        assert lexical_hits(reader, "river") == {str(folder / "a.txt")} and lexical_hits(reader, "dog") == set()
        assert check(reader).consistent

        count = len(syncs)
        (folder / "new0.txt").touch()  # an event without a change: skipped by hash
        wait_for(lambda: len(syncs) > count, thread)
        assert set(syncs[-1].values()) == {"unchanged"}
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert "removed" in str(syncs) and len(syncs) <= 4  # the first sync, the burst (maybe split in two), the touch
    assert f"removed {folder / 'sub' / 'b.txt'}" in caplog.text and f"ingested {folder / 'new3.txt'}" in caplog.text
    assert watcher.summary.outcomes["removed"] == 1 and watcher.summary.outcomes["ingested"] >= 8
    assert check(reader).consistent
    reader.close()
    watcher.store.close()


@pytest.mark.parametrize("how", ["deleted", "unmounted"])
def test_watch_stops_and_keeps_the_documents_when_the_folder_disappears(tmp_path, encoder, how):
    folder = tmp_path / "docs"
    write_files(folder, {"a.txt": FILES["a.txt"]})
    _, open_store = cli_store(tmp_path)
    store = open_store()
    watcher = Watcher(folder, store, encoder, small_settings(), debounce=0.1)
    stop, synced, errors = threading.Event(), threading.Event(), []

    def run() -> None:
        try:
            watcher.run(stop, lambda _: synced.set())
        except FileNotFoundError as err:
            errors.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    assert synced.wait(30)
    if how == "deleted":
        shutil.rmtree(folder)
    else:  # an unmounted share leaves its empty mount point, on another device than the share
        watcher.device = -1
        (folder / "a.txt").unlink()
    thread.join(30)
    stop.set()
    assert not thread.is_alive() and "is gone or on another device now: stopped watching" in str(errors[0])
    assert [Path(doc.path).name for doc in store.documents()] == ["a.txt"]
    store.close()


def test_a_killed_watcher_leaves_a_consistent_store_and_the_next_one_catches_up(tmp_path, model_dir, encoder):
    folder = tmp_path / "docs"
    write_files(folder, {f"f{n:03d}.txt": f"the cat sat on the mat number {n}. " * 4 for n in range(40)})
    common, open_store = cli_store(tmp_path)
    command = [sys.executable, "-m", "jasper_rag.cli", "ingest", str(folder), "--watch", "--debounce", "0.3"]
    command += ["--model", str(model_dir), "-q", *common]
    env = {**os.environ, "JASPER_INGEST_COMMIT_CHUNKS": "2", "JASPER_CHUNK_TOKENS": "24", "HF_HUB_OFFLINE": "1"}
    store = open_store()
    watcher = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: len(store.documents()) >= 4, Running(watcher), seconds=60)
    watcher.kill()  # SIGKILL in the middle of the first sync
    watcher.wait()
    assert 4 <= len(store.documents()) < 40 and check(store).consistent

    synced, stop = threading.Event(), threading.Event()
    thread = threading.Thread(
        target=Watcher(folder, store, encoder, small_settings(), debounce=0.1).run, args=(stop, lambda _: synced.set())
    )
    thread.start()
    assert synced.wait(60)
    stop.set()
    thread.join(30)
    assert len(store.documents()) == 40 and check(store).consistent
    store.close()


def test_ctrl_c_stops_the_watch_command_with_a_summary(tmp_path, model_dir, monkeypatch):
    folder = tmp_path / "docs"
    write_files(folder, {"a.txt": FILES["a.txt"], "bad.pdf": "not a pdf"})
    common, open_store = cli_store(tmp_path)
    run = Watcher.run

    def interrupted_after_one_sync(self, stop, on_sync=None):
        def interrupt(_summary) -> None:
            raise KeyboardInterrupt

        return run(self, stop, interrupt)

    monkeypatch.setattr(Watcher, "run", interrupted_after_one_sync)
    command = ["ingest", str(folder), "--watch", "--debounce", "0.1", "--model", str(model_dir), "-q", *common]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 3, result.output  # one file failed
    assert "stopped: every sync committed so far is in the store" in result.output
    assert "1 syncs; 1 failed, 1 ingested" in result.output
    result = CliRunner().invoke(app, ["ingest", str(folder), str(tmp_path), "--watch", *common])
    assert result.exit_code == 1 and "--watch takes exactly one existing folder" in result.output
    store = open_store()
    assert check(store).consistent
    store.close()


class Running:
    """A watcher process, for ``wait_for``."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process

    def is_alive(self) -> bool:
        return self.process.poll() is None
