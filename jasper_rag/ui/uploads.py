"""Uploaded files -> files in the uploads folder, safely: type and size limits, generated names.

The user's file name is never used as a path: only its extension (checked against the types
ingestion reads) and a slug of its stem survive, followed by a hash of the content, e.g.
``Q3 report (final).PDF`` -> ``q3-report-final-1f2e3d4c5b6a.pdf``. Files are written atomically.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from jasper_rag.config import Settings
from jasper_rag.ingest.loaders import FILE_TYPES

SLUG_MAX = 40
HASH_CHARS = 12
NON_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class UploadPolicy:
    """What the UI accepts: allowed extensions (with the dot), a size limit and the target folder."""

    suffixes: tuple[str, ...]
    max_mb: float
    folder: Path

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

    def refusal(self, name: str, data: bytes) -> str | None:
        """Why an upload is refused (None: accepted)."""
        suffix = PurePosixPath(base_name(name)).suffix.lower()
        if suffix not in self.suffixes:
            return f"unsupported file type '{suffix or 'no extension'}'"
        if not data:
            return "empty file (0 bytes)"
        if len(data) > self.max_bytes:
            return f"too large: {len(data) / 2**20:.3g} MB > limit {self.max_mb:g} MB"
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
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".upload-", suffix=".part")
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
    for name, data in files:
        reason = policy.refusal(name, data)
        if reason is not None:
            refused.append(RefusedUpload(name, reason))
            continue
        policy.folder.mkdir(parents=True, exist_ok=True)
        target = policy.folder / safe_name(name, data)
        if not target.exists():
            write_atomic(target, data)
        saved.append(SavedUpload(name, target))
    return saved, refused
