"""Atomic file writes and marker-delimited README blocks, shared by the report writers."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temp file beside ``path``, then rename it over ``path`` (no half files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def replace_marked_block(path: Path, start_marker: str, end_marker: str, block: str) -> bool:
    """Replace the text between two marker lines of ``path`` with ``block``; False when a marker is missing."""
    text = path.read_text(encoding="utf-8")
    start, end = text.find(start_marker), text.find(end_marker)
    if start < 0 or end < start:
        log.warning("%s has no %s ... %s markers: block not inserted", path, start_marker, end_marker)
        return False
    updated = text[: start + len(start_marker)] + "\n" + block + "\n" + text[end:]
    atomic_write(path, lambda tmp: tmp.write_text(updated, encoding="utf-8"))
    return True
