"""``jasper-rag ingest --watch FOLDER``: keep a folder and the store in sync.

A watchdog observer collects the folder's changes (created, changed, moved, deleted files; hidden ones
and the store's own folder ignored). Once the changes have settled for ``debounce`` seconds (or have
kept coming for ``MAX_WAIT_DEBOUNCES`` debounces), one batch runs the ordinary ``Ingestor`` over the
folder: it walks the folder, skips unchanged files by hash, ingests new and changed ones and removes
the documents of files that are gone, exactly as ``jasper-rag ingest FOLDER`` would. Every batch
commits like ingest does, so a watcher killed at any moment leaves a consistent store, and the sync
that starts the next watcher catches up with whatever changed meanwhile. The observer starts before
that first sync, so nothing changed during it is missed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError
from watchdog.events import EVENT_TYPE_CLOSED_NO_WRITE, EVENT_TYPE_OPENED, FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from jasper_rag.config import Settings
from jasper_rag.ingest.pipeline import Ingestor, absolute, is_under
from jasper_rag.ingest.summary import UNCHANGED, IngestSummary
from jasper_rag.store import Store

log = logging.getLogger(__name__)

IGNORED_EVENTS = (EVENT_TYPE_OPENED, EVENT_TYPE_CLOSED_NO_WRITE)  # our own reads of the files: not changes
MAX_WAIT_DEBOUNCES = 20  # a folder that never settles is still synced this often
MAX_RETRY_S = 60.0


class Changes(FileSystemEventHandler):
    """The paths changed under ``folder`` since the last ``take()``, and when the first and last change came."""

    def __init__(self, folder: Path, ignored: Path) -> None:
        self.folder = folder
        self.ignored = ignored
        self.lock = threading.Lock()
        self.paths: set[str] = set()
        self.first = self.last = 0.0

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in IGNORED_EVENTS or (event.is_directory and event.event_type == "modified"):
            return
        for raw in (event.src_path, event.dest_path):
            path = os.fsdecode(raw)
            if path and self._relevant(path):
                self.add(path)

    def _relevant(self, path: str) -> bool:
        """Inside the folder, not hidden (as ingest skips hidden entries), not the store's own files."""
        relative = os.path.relpath(path, self.folder)
        hidden = any(part.startswith(".") for part in Path(relative).parts)
        return not hidden and not is_under(path, [self.ignored])

    def add(self, path: str) -> None:
        with self.lock:
            now = time.monotonic()
            if not self.paths:
                self.first = now
            self.paths.add(path)
            self.last = now

    def settled(self, debounce: float) -> bool:
        """Changes are waiting and either none came for ``debounce`` seconds or they have waited too long."""
        with self.lock:
            now = time.monotonic()
            waited = now - self.first >= debounce * MAX_WAIT_DEBOUNCES
            return bool(self.paths) and (now - self.last >= debounce or waited)

    def take(self) -> set[str]:
        with self.lock:
            taken, self.paths = self.paths, set()
            return taken


@dataclass
class WatchSummary:
    """What a watch did: syncs run, files per outcome (ingested, removed, failed...), errors met."""

    folder: Path
    started: float = field(default_factory=time.monotonic)
    syncs: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: int = 0

    def render(self) -> str:
        seconds = time.monotonic() - self.started
        done = ", ".join(f"{count} {status}" for status, count in sorted(self.outcomes.items())) or "no changes"
        errors = f"; {self.errors} syncs failed (retried)" if self.errors else ""
        return f"watched {self.folder} for {seconds:.0f} s: {self.syncs} syncs; {done}{errors}"


def describe(path: str, status: str, reason: str | None, entries: int) -> str:
    """One log line for one file's outcome."""
    if status == "ingested":
        return f"ingested {path} ({entries} entries)"
    if status == "removed":
        return f"removed {path}"
    return f"{status} {path}: {reason}"


class Watcher:
    """Keeps ``folder`` in sync with ``store`` until ``stop`` is set (see the module docstring)."""

    def __init__(self, folder: Path, store: Store, encoder, settings: Settings, debounce: float = 2.0) -> None:
        self.folder = absolute(folder)
        self.store = store
        self.encoder = encoder
        self.settings = settings
        self.debounce = debounce
        self.changes = Changes(self.folder, absolute(store.index_dir))
        self.summary = WatchSummary(self.folder)
        self.device = os.stat(self.folder).st_dev  # another device later: the share was unmounted

    def _still_there(self) -> bool:
        """The folder exists and is on the device it was on when the watch began (an unmounted share
        leaves an empty mount point behind, which a sync would read as every file deleted)."""
        try:
            return self.folder.is_dir() and os.stat(self.folder).st_dev == self.device
        except OSError:
            return False

    def run(self, stop: threading.Event, on_sync: Callable[[IngestSummary], None] | None = None) -> WatchSummary:
        """Sync once, then after every settled burst of changes, until ``stop`` is set (or Ctrl-C);
        ``FileNotFoundError`` when the folder itself disappears."""
        observer = Observer()
        observer.schedule(self.changes, str(self.folder), recursive=True)
        observer.start()
        try:
            log.info("watching %s (debounce %.1f s); Ctrl-C stops", self.folder, self.debounce)
            self.changes.add(str(self.folder))  # the first sync: catch up with what changed while nobody watched
            retry = self.debounce
            while not stop.is_set():
                if not self.changes.settled(self.debounce):
                    stop.wait(min(self.debounce / 4, 0.25))
                    continue
                if not self._still_there():  # syncing would remove every document of it: an unmounted share?
                    raise FileNotFoundError(
                        f"{self.folder} is gone or on another device now: stopped watching, its documents are kept"
                    )
                changed = self.changes.take()
                if self._sync(changed, on_sync):
                    retry = self.debounce
                    continue
                for path in changed:  # put back, try again later
                    self.changes.add(path)
                stop.wait(retry)
                retry = min(retry * 2, MAX_RETRY_S)
        finally:
            observer.stop()
            observer.join()
        return self.summary

    def _sync(self, changed: set[str], on_sync: Callable[[IngestSummary], None] | None) -> bool:
        """One batch through the Ingestor; False when the store could not be written (kept for a retry)."""
        log.debug("%d changed paths: syncing %s", len(changed), self.folder)
        try:
            ingestor = Ingestor(self.store, self.encoder, self.settings, progress=False)
            summary = ingestor.run([self.folder], retry_failed=not self.summary.syncs)  # then: once changed
        except (OSError, SQLAlchemyError) as err:  # a full disk, a database gone away: the last commit is intact
            self.summary.errors += 1
            log.error("sync of %s failed, retrying: %s", self.folder, err)
            return False
        self.summary.syncs += 1
        for outcome in summary.outcomes:
            if outcome.status == UNCHANGED:
                continue
            self.summary.outcomes[outcome.status] += 1
            line = describe(outcome.path, outcome.status, outcome.reason, outcome.entries)
            (log.warning if outcome.status == "failed" else log.info)(line)
        if on_sync is not None:
            on_sync(summary)
        return True
