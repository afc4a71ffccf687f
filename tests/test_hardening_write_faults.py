"""Write faults: a full disk or an I/O error at a random point of a commit must never cost a committed document.

Each trial is one writer session of three commits of a few documents (new, replaced, deleted) on one store,
with one fault injected at a random point of one of them (the session stops there, as an ingest run does):

- ``index write``: the disk fills while an index file is written (``RLIMIT_FSIZE`` set a random number of
  bytes short of the file's size, ``SIGXFSZ`` ignored, so the write fails with ``EFBIG`` as it would with
  ``ENOSPC``; half the time only the last few bytes, i.e. the final flush, fail);
- ``fsync``: ``EIO`` from the fsync of an index file or of the index folder;
- ``rename``: ``EIO`` from the rename of a written index file into place;
- ``SQL commit``: ``ENOSPC`` raised as the SQL transaction commits (before it reaches the database).

A commit that returns is acknowledged. After each trial a fresh reader runs ``doctor`` (and ``--repair`` when it
finds drift) and checks: every acknowledged document is searchable with its committed text (acknowledged lost =
0), every index loads, and the documents of failed commits are in their old or their new state.
``JASPER_TEST_FAULT_TRIALS`` sets the number of trials (default 24).
"""

from __future__ import annotations

import errno
import os
import random
import resource
import signal
import time
from collections import Counter
from pathlib import Path

import faiss
import numpy as np
from sqlalchemy import event

from jasper_rag.embedding import normalize_rows
from jasper_rag.store import Chunk, DocumentRecord, DocumentStatus, FaqEntry, ModelIdentity, Store, VectorIndex
from jasper_rag.store.doctor import check, repair
from tests.reliability_report import record

TRIALS = int(os.environ.get("JASPER_TEST_FAULT_TRIALS", "24"))
HEADS = {"full": 32, "d8": 8}
MODEL = ModelIdentity("fp-faults", "tiny", HEADS)
POINTS = ("index write", "fsync", "rename", "SQL commit")
COMMITS_PER_TRIAL = 3


def make_record(path: str, texts: tuple[str, ...], seed: int) -> DocumentRecord:
    rng = np.random.default_rng(seed)
    if path.endswith(".csv"):
        entries = [FaqEntry(ordinal=i, text=t, answer="a", embedded=True) for i, t in enumerate(texts)]
    else:
        entries = [
            Chunk(ordinal=i, text=t, page=1, char_start=0, char_end=len(t), embedded=True) for i, t in enumerate(texts)
        ]
    vectors = {head: normalize_rows(rng.standard_normal((len(texts), dim))) for head, dim in HEADS.items()}
    return DocumentRecord(path, "text", DocumentStatus.INGESTED, f"hash-{seed}", entries=entries, vectors=vectors)


class Faults:
    """Injects one fault at the ``nth`` matching call of ``point`` (or none when the commit makes fewer calls)."""

    def __init__(self, monkeypatch, index_dir: Path, rng: random.Random) -> None:
        self.index_dir, self.rng = str(index_dir.resolve()), rng
        self.point: str | None = None
        self.nth = 0
        self.calls = 0
        self.hit = False
        real_fsync, real_replace, real_save = os.fsync, os.replace, VectorIndex.save

        def in_index_dir(path: str) -> bool:
            return path == self.index_dir or path.startswith(self.index_dir + os.sep)

        def fsync(fd):
            if self._due("fsync") and in_index_dir(os.readlink(f"/proc/self/fd/{fd}")):
                self._fire(errno.EIO)
            return real_fsync(fd)

        def replace(src, dst, **kwargs):
            if self._due("rename") and in_index_dir(str(Path(dst).resolve())):
                self._fire(errno.EIO)
            return real_replace(src, dst, **kwargs)

        def save(index, path):
            if not (self._due("index write") and self._count()):
                return real_save(index, path)
            self.hit = True
            size = len(faiss.serialize_index(index.index))
            short = self.rng.randint(1, 64) if self.rng.random() < 0.5 else self.rng.randint(1, size - 1)
            soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
            handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (size - short, hard))
            try:
                return real_save(index, path)
            finally:
                resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
                signal.signal(signal.SIGXFSZ, handler)

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(VectorIndex, "save", save)

    def arm(self, point: str, nth: int) -> None:
        self.point, self.nth, self.calls, self.hit = point, nth, 0, False

    def disarm(self) -> None:
        self.point = None

    def _due(self, point: str) -> bool:
        return self.point == point and not self.hit

    def _count(self) -> bool:
        self.calls += 1
        return self.calls == self.nth + 1

    def _fire(self, code: int) -> None:
        if self._count():
            self.hit = True
            raise OSError(code, os.strerror(code))

    def attach_sql(self, store: Store) -> None:
        def before_commit(_connection):
            if self._due("SQL commit"):
                self._fire(errno.ENOSPC)

        event.listen(store.engine, "commit", before_commit)


def stored_texts(store: Store) -> dict[str, tuple[str, ...]]:
    """Each document's entry texts as the full-head indexes reach them (what a search can return)."""
    texts: dict[str, list[tuple[int, str]]] = {}
    for kind in store.kinds():
        for view in store.fetch(store.index(kind, "full").ids()):
            texts.setdefault(view.path, []).append((view.ordinal, view.text))
    return {path: tuple(text for _, text in sorted(rows)) for path, rows in texts.items()}


def test_write_faults_at_random_points_lose_no_acknowledged_document(tmp_path, monkeypatch):
    url, index_dir = f"sqlite:///{tmp_path / 'meta.db'}", tmp_path / "indexes"
    rng = random.Random(7)
    store = Store(url, index_dir)
    store.bind_model(MODEL)
    first = {f"/doc{n:02d}.txt": (f"doc{n} v0 a", f"doc{n} v0 b") for n in range(6)} | {"/faq.csv": ("why?",)}
    with store.writer():
        store.commit([make_record(path, texts, n) for n, (path, texts) in enumerate(first.items())])
    store.close()
    expected: dict[str, set[tuple[str, ...] | None]] = {path: {texts} for path, texts in first.items()}

    faults = Faults(monkeypatch, index_dir, rng)
    hits, tried, rows = Counter(), Counter(), []
    acknowledged_total = lost = unexpected = repairs = readable = indexes = 0
    started = time.perf_counter()
    for trial in range(TRIALS):
        live = sorted(path for path, states in expected.items() if states != {None})
        commits, saves = [], 0
        for number in range(COMMITS_PER_TRIAL):  # one writer session, like an ingest run committing batch by batch
            changes = {path: (f"{path} v{trial}.{number}",) * rng.randint(1, 3) for path in rng.sample(live, 2)}
            changes |= {f"/new{trial:02d}-{number}-{n}.txt": (f"new {trial} {number} {n}",) for n in range(2)}
            if rng.random() < 0.5:  # touches the FAQ indexes too: four index files in this commit, else two
                changes[f"/faq{trial:02d}-{number}.csv"] = (f"question {trial} {number}?",)
            gone = [path for path in live if path not in changes]
            deleted = rng.sample(gone, 1) if rng.random() < 0.5 else []
            live = sorted((set(live) | set(changes)) - set(deleted))
            commits.append((changes, deleted))
            saves += 4 if any(path.endswith(".csv") for path in changes) else 2
        point = POINTS[trial % len(POINTS)]
        calls = {"index write": saves, "fsync": 2 * saves, "rename": saves}.get(point, COMMITS_PER_TRIAL)
        faults.arm(point, rng.randrange(calls))  # the fault falls in any one of the session's commits
        tried[point] += 1

        writer = Store(url, index_dir)
        faults.attach_sql(writer)
        acked_commits = 0
        try:
            with writer.writer():
                for changes, deleted in commits:
                    writer.commit([make_record(p, t, rng.randrange(10**6)) for p, t in changes.items()], deleted)
                    acked_commits += 1
        except OSError:
            pass  # the run stops at its first failed commit
        finally:
            faults.disarm()
            writer.close()
        hits[point] += faults.hit
        for number, (changes, deleted) in enumerate(commits[: acked_commits + 1]):
            acked = number < acked_commits
            acknowledged_total += acked * len(changes)
            for path, texts in changes.items():
                expected[path] = {texts} if acked else expected.get(path, {None}) | {texts}
            for path in deleted:
                expected[path] = {None} if acked else expected[path] | {None}

        reader = Store(url, index_dir)
        report = check(reader)
        needed_repair = not report.consistent
        if needed_repair:
            repairs += 1
            report = repair(reader)
        assert report.consistent, f"trial {trial} ({point}): {report.render()}"
        states = reader.index_states()
        loads = 0
        for kind, head in states:
            try:
                reader.index(kind, head)
                loads += 1
            except Exception:
                pass
        indexes += len(states)
        readable += loads
        actual = stored_texts(reader)
        reader.close()
        trial_lost = sum(
            len(states) == 1 and None not in states and actual.get(path) not in states
            for path, states in expected.items()
        )
        lost += trial_lost
        unexpected += sum(actual.get(path) not in states for path, states in expected.items())
        unexpected += len(set(actual) - set(expected))
        rows.append(
            [trial + 1, point, "yes" if faults.hit else "no", f"{acked_commits}/{COMMITS_PER_TRIAL}",
             "yes" if needed_repair else "no", f"{loads}/{len(states)}", trial_lost]
        )  # fmt: skip
        assert loads == len(states), f"trial {trial} ({point}): {len(states) - loads} indexes unreadable"
        assert not trial_lost, f"trial {trial} ({point}): {trial_lost} acknowledged documents lost"
        assert not unexpected, f"trial {trial} ({point}): documents in neither their old nor their new state"
        expected = {path: {actual.get(path)} for path in expected}

    assert sum(hits.values()) >= TRIALS // 2  # most faults landed inside a commit
    record(
        "write_faults",
        "Write faults (ENOSPC / EIO / short index writes inside commits)",
        {
            "trials": TRIALS,
            "faults injected, per point": ", ".join(f"{p}: {hits[p]} of {tried[p]} trials" for p in POINTS),
            "acknowledged document writes (new or replaced documents in commits that returned)": acknowledged_total,
            "acknowledged documents lost": lost,
            "documents in neither their old nor their new state": unexpected,
            "indexes readable after each trial": f"{readable}/{indexes} ({100 * readable / max(indexes, 1):.0f}%)",
            "trials where doctor found drift (then repaired)": repairs,
            "total time": f"{time.perf_counter() - started:.1f} s",
        },
        (
            ["trial", "fault point", "fault hit", "commit acknowledged", "repair needed", "indexes readable", "lost"],
            rows,
        ),
        [
            "index write: RLIMIT_FSIZE a random number of bytes short of the index file (half the trials 1-64 bytes: "
            "only the final flush fails), SIGXFSZ ignored, so the write fails with EFBIG like a full disk.",
            "fsync / rename: EIO from os.fsync (index file or folder) / os.replace of an index file; "
            "SQL commit: ENOSPC raised as the transaction commits.",
            f"Each trial is one writer session of {COMMITS_PER_TRIAL} commits; the n-th matching call of the session "
            "fails (n random), so the commits before it are acknowledged and the session stops at the failed one.",
            "Lost = a document whose commit returned but which a fresh reader (after doctor, and --repair when it "
            "found drift) does not find with its committed text.",
        ],
    )
