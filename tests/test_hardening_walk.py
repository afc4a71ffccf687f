"""Hardening: what a folder walk may reach and what a failed walk may delete.

A symlink inside an ingested folder must not pull in a file from outside it (``notes.txt -> /etc/passwd``),
and a subfolder that cannot be listed (permissions, a flaky network share) must not make its documents
look deleted. Figures go to ``reports/reliability.md`` (section ``walk``).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from jasper_rag.ingest.pipeline import discover, ingest_paths
from jasper_rag.store import DocumentStatus, EntryKind
from jasper_rag.store.doctor import check
from tests.ingest_support import make_store, small_settings
from tests.reliability_report import record

SECRET = "the launch code is swordfish"
RESULTS: dict[str, object] = {}


def searchable_paths(store) -> set[str]:
    return {v.path for kind in store.kinds() for v in store.fetch(store.index(kind, "full").ids())}


def searchable_texts(store) -> list[str]:
    return [v.text for v in store.fetch(store.index(EntryKind.CHUNK, "full").ids())]


def test_symlinks_out_of_the_ingested_folder_are_refused(tmp_path, tiny_encoder):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    (outside / "nested").mkdir()
    (outside / "nested" / "deep.txt").write_text(SECRET + " again")
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "good.txt").write_text("the cat sat on the mat.")
    (folder / "sub" / "inner.txt").write_text("the dog sat on the sofa.")
    os.symlink(outside / "secret.txt", folder / "notes.txt")  # absolute link out
    os.symlink("../../outside/secret.txt", folder / "sub" / "relative.txt")  # relative link out
    os.symlink("/etc/passwd", folder / "passwd.txt")
    os.symlink(folder / "sub" / "inner.txt", folder / "alias.txt")  # stays inside: read
    os.symlink(outside / "nested", folder / "linked-folder")  # symlinked folders are not walked

    store = make_store(tmp_path)
    summary = ingest_paths([folder], tiny_encoder, store, small_settings(), progress=False)
    outcomes = {Path(o.path).name: o for o in summary.outcomes}
    for name in ("notes.txt", "relative.txt", "passwd.txt"):
        assert outcomes[name].status == DocumentStatus.FAILED, outcomes[name]
        assert outcomes[name].reason == f"symlink pointing outside {folder}: not ingested", outcomes[name]
    assert outcomes["alias.txt"].status == outcomes["good.txt"].status == DocumentStatus.INGESTED
    assert "deep.txt" not in outcomes
    texts = " ".join(searchable_texts(store))
    assert "swordfish" not in texts and "root:" not in texts
    assert searchable_paths(store) == {str(folder / n) for n in ("good.txt", "alias.txt", "sub/inner.txt")}
    assert check(store).consistent

    # A file the user names directly may be a link: they chose it.
    direct = ingest_paths([folder / "notes.txt"], tiny_encoder, store, small_settings(), progress=False)
    assert [o.status for o in direct.outcomes] == [DocumentStatus.INGESTED]
    for name, link in (("notes.txt", "absolute"), ("relative.txt", "relative"), ("passwd.txt", "/etc/passwd")):
        RESULTS[f"{name} -> {link} link out of the folder"] = outcomes[name].reason.replace(str(folder), "<folder>")


def test_a_folder_swapped_for_a_link_after_the_walk_is_refused(tmp_path):
    from jasper_rag.ingest.loaders import LoadError
    from jasper_rag.ingest.pipeline import read_file

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.txt").write_text(SECRET)
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.txt").write_text("fine")
    found = discover([folder])
    path = folder / "sub" / "a.txt"
    assert found.roots[path] == folder
    (folder / "sub" / "a.txt").unlink()
    (folder / "sub").rmdir()
    os.symlink(outside, folder / "sub")  # an intermediate component now leads out
    with pytest.raises(LoadError, match="symlink pointing outside"):
        read_file(path, 2**20, found.roots[path])


def failing_scandir(monkeypatch, blocked: Path, error: int = errno.EACCES) -> None:
    """``os.scandir`` (which ``os.walk`` lists with) fails for ``blocked``, as for a root-owned 0700 folder
    (the tests run as root, which bypasses permissions, so the failure is simulated)."""
    real = os.scandir

    def scandir(path="."):
        if not isinstance(path, int) and os.fspath(path) == str(blocked):  # an int: a folder fd (shutil.rmtree)
            raise OSError(error, os.strerror(error), os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


@pytest.mark.parametrize("error", [errno.EACCES, errno.EIO])
def test_a_subfolder_that_cannot_be_listed_keeps_its_documents(tmp_path, tiny_encoder, monkeypatch, error):
    folder = tmp_path / "docs"
    (folder / "private" / "deeper").mkdir(parents=True)
    (folder / "top.txt").write_text("the cat sat on the mat.")
    (folder / "private" / "a.txt").write_text("the dog sat on the sofa.")
    (folder / "private" / "deeper" / "b.txt").write_text("the bird sat on the fence.")
    store = make_store(tmp_path)
    first = ingest_paths([folder], tiny_encoder, store, small_settings(), progress=False)
    assert first.exit_code == 0, first.render()
    before = searchable_paths(store)
    assert len(before) == 3

    (folder / "top.txt").unlink()  # really gone: still removed
    failing_scandir(monkeypatch, folder / "private", error)
    again = ingest_paths([folder], tiny_encoder, store, small_settings(), progress=False)
    outcomes = {o.path: o for o in again.outcomes}
    assert outcomes.pop(str(folder / "top.txt")).status == "removed"
    blocked = outcomes.pop(str(folder / "private"))
    assert blocked.status == DocumentStatus.FAILED
    assert blocked.reason == f"cannot list folder: {os.strerror(error)}; its documents are kept"
    assert outcomes == {}
    assert searchable_paths(store) == before - {str(folder / "top.txt")}
    assert again.exit_code == 3 and "cannot list folder" in again.render()
    assert check(store).consistent
    RESULTS[f"walk error {errno.errorcode[error]}"] = blocked.reason


def test_a_given_folder_that_cannot_be_examined_keeps_its_documents(tmp_path, tiny_encoder, monkeypatch):
    folder = tmp_path / "share"
    folder.mkdir()
    (folder / "a.txt").write_text("the cat sat on the mat.")
    store = make_store(tmp_path)
    ingest_paths([folder], tiny_encoder, store, small_settings(), progress=False)
    failing_scandir(monkeypatch, folder, errno.EIO)  # the share itself fails to list
    again = ingest_paths([folder], tiny_encoder, store, small_settings(), progress=False)
    assert [(o.path, o.status) for o in again.outcomes] == [(str(folder), DocumentStatus.FAILED)]
    assert searchable_paths(store) == {str(folder / "a.txt")}


def test_record_walk_figures():
    if len(RESULTS) < 3:
        pytest.skip("run with the tests above")
    record(
        "walk",
        "Folder walks: symlinks out of the folder, folders that cannot be listed",
        {
            "symlinks out of the folder (absolute, relative, /etc/passwd)": "refused, recorded as failed",
            "symlink staying inside the folder": "ingested",
            "symlinked folder": "not walked",
            "folder swapped for a link after the walk": "refused (resolved path checked, O_NOFOLLOW, /proc fd)",
            "file named directly that is a link": "ingested (the user named it)",
            "unlistable subfolder (EACCES, EIO), simulated": "documents under it kept, failure reported",
        },
        (["case", "reason recorded"], [[name, str(reason)] for name, reason in RESULTS.items()]),
    )
