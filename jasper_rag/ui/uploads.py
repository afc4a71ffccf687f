"""Uploaded files -> files in the uploads folder, safely: type and size limits, generated names.

The user's file name is never used as a path: only its extension (checked against the types
ingestion reads) and a slug of its stem survive, followed by a hash of the content, e.g.
``Q3 report (final).PDF`` -> ``q3-report-final-1f2e3d4c5b6a.pdf``. Files are written atomically.

Limits, all checked on the server before anything is written: the file types ingestion reads, at most
``ingest_max_file_mb`` per file (Streamlit's own ``server.maxUploadSize`` in ``.streamlit/config.toml``
is set to the same 50 MB, so larger requests are refused before they reach this code), and at most
``max_total_mb`` (default 2 GiB) for the whole folder.

What the uploads folder keeps (``uploads_dir``): only files the store still uses. The files of a run
that failed are deleted right after it (``discard_failed``); refused uploads are never written; after
every ingest run ``clean_uploads`` deletes files no document of the store refers to (or only as
failed; e.g. after ``ingest --rebuild`` or a removal) and leftover ``.upload-*.part`` temp files of
interrupted writes, once they are older than ``GRACE_S`` (one hour, so a file another session just
saved and is still ingesting is left alone). Files of ingested documents stay: the store's image hits
show their thumbnails from them, and ``make ingest`` re-reads them.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from jasper_rag.config import Settings
from jasper_rag.ingest.loaders import FILE_TYPES

SLUG_MAX = 40
HASH_CHARS = 12
NON_SLUG = re.compile(r"[^a-z0-9]+")
TEMP_PREFIX = ".upload-"
GRACE_S = 3600.0
MAX_TOTAL_MB = 2048.0
FAILED = "failed"


@dataclass(frozen=True)
class UploadPolicy:
    """What the UI accepts: allowed extensions (with the dot), a size limit per file and for the whole
    target folder."""

    suffixes: tuple[str, ...]
    max_mb: float
    folder: Path
    max_total_mb: float = MAX_TOTAL_MB

    @classmethod
    def from_settings(cls, settings: Settings) -> UploadPolicy:
        """Ingestion's file types and size limit (``JASPER_INGEST_MAX_FILE_MB``), ``JASPER_UPLOADS_DIR``."""
        return cls(tuple(sorted(FILE_TYPES)), settings.ingest_max_file_mb, settings.uploads_dir)

    @property
    def max_bytes(self) -> int:
        return int(self.max_mb * 2**20)

    def describe(self) -> str:
        kinds = ", ".join(suffix.lstrip(".") for suffix in self.suffixes)
        return f"up to {self.max_mb:g} MB per file; {kinds}"

    def refusal(self, name: str, data: bytes, folder_bytes: int = 0) -> str | None:
        """Why an upload is refused (None: accepted); ``folder_bytes``: what the folder holds already."""
        suffix = PurePosixPath(base_name(name)).suffix.lower()
        if suffix not in self.suffixes:
            return f"unsupported file type '{suffix or 'no extension'}'"
        if not data:
            return "empty file (0 bytes)"
        if len(data) > self.max_bytes:
            return f"too large: {len(data) / 2**20:.3g} MB > limit {self.max_mb:g} MB"
        if folder_bytes + len(data) > self.max_total_mb * 2**20:
            return f"the uploads folder is full ({folder_bytes / 2**20:.3g} MB of {self.max_total_mb:g} MB)"
        return None


@dataclass(frozen=True)
class SavedUpload:
    name: str  # as uploaded, for display only
    path: Path


@dataclass(frozen=True)
class RefusedUpload:
    name: str
    reason: str


def base_name(name: str) -> str:
    """The last component of an uploaded name, whatever separators the browser's OS uses."""
    return name.replace("\\", "/").rsplit("/", 1)[-1]


def safe_name(name: str, data: bytes) -> str:
    """``<slug of the stem>-<content hash><lower-case extension>``: no separators, dots or odd characters."""
    path = PurePosixPath(base_name(name))
    slug = NON_SLUG.sub("-", path.stem.lower()).strip("-")[:SLUG_MAX].strip("-") or "upload"
    return f"{slug}-{hashlib.sha256(data).hexdigest()[:HASH_CHARS]}{path.suffix.lower()}"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a hidden temp file beside ``path``, then rename it into place."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX, suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def save_uploads(
    files: Iterable[tuple[str, bytes]], policy: UploadPolicy
) -> tuple[list[SavedUpload], list[RefusedUpload]]:
    """Save the accepted uploads under ``policy.folder``; list the refused ones with their reasons."""
    saved: list[SavedUpload] = []
    refused: list[RefusedUpload] = []
    held = folder_size(policy.folder)
    for name, data in files:
        target = policy.folder / safe_name(name, data)
        reason = policy.refusal(name, data, 0 if target.exists() else held)
        if reason is not None:
            refused.append(RefusedUpload(name, reason))
            continue
        policy.folder.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            write_atomic(target, data)
            held += len(data)
        saved.append(SavedUpload(name, target))
    return saved, refused


def folder_size(folder: Path) -> int:
    """Bytes held by the regular files directly in ``folder`` (0 when it does not exist)."""
    if not folder.is_dir():
        return 0
    return sum(entry.stat().st_size for entry in folder.iterdir() if entry.is_file() and not entry.is_symlink())


def discard_failed(uploads: Iterable[SavedUpload], outcomes: Iterable, keep: Collection[Path] = ()) -> list[Path]:
    """Delete the saved uploads whose ingest outcome is ``failed`` (unless in ``keep``); the deleted paths."""
    failed = {Path(outcome.path).resolve() for outcome in outcomes if outcome.status == FAILED}
    kept = {Path(path).resolve() for path in keep}
    removed: list[Path] = []
    for upload in uploads:
        path = upload.path.resolve()
        if path in failed and path not in kept and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(upload.path)
    return removed


def clean_uploads(
    folder: Path, keep: Collection[Path], grace_s: float = GRACE_S, now: float | None = None
) -> list[Path]:
    """Delete the files of ``folder`` not in ``keep`` (the store's documents) and stale temp files, once
    older than ``grace_s`` seconds; the deleted paths."""
    if not folder.is_dir():
        return []
    now = time.time() if now is None else now
    kept = {Path(path).resolve() for path in keep}
    removed: list[Path] = []
    for entry in folder.iterdir():
        if entry.is_symlink() or not entry.is_file() or entry.resolve() in kept:
            continue
        if now - entry.stat().st_mtime >= grace_s:
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def stored_paths(documents: Iterable) -> set[Path]:
    """The files the store still uses: every document not ``failed`` (ingested, not embedded, stale)."""
    return {Path(doc.path) for doc in documents if doc.status != FAILED}
