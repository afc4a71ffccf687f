"""Ingesting uploads file by file, so the page can show live progress, and the summary rows it shows."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from jasper_rag.config import Settings
from jasper_rag.ingest.pipeline import ingest_paths
from jasper_rag.ingest.summary import IngestSummary
from jasper_rag.store import Store
from jasper_rag.ui.uploads import RefusedUpload, SavedUpload

OnFile = Callable[[int, int, str], None]  # (files done, files in all, name of the next file)


def ingest_uploads(
    uploads: Sequence[SavedUpload], encoder, store: Store, settings: Settings, on_file: OnFile | None = None
) -> IngestSummary:
    """Ingest the saved uploads one file at a time (each its own atomic commit); one summary for all."""
    summary = IngestSummary()
    started = time.perf_counter()
    for done, upload in enumerate(uploads):
        if on_file is not None:
            on_file(done, len(uploads), upload.name)
        part = ingest_paths([upload.path], encoder, store, settings, progress=False)
        summary.outcomes += part.outcomes
        summary.embedded.update(part.embedded)
    if on_file is not None:
        on_file(len(uploads), len(uploads), "")
    summary.seconds = time.perf_counter() - started
    return summary


@dataclass(frozen=True)
class UploadRow:
    """One line of the Ingest tab's summary table."""

    file: str
    status: str
    entries: int
    reason: str


def summary_rows(
    uploads: Sequence[SavedUpload], refused: Sequence[RefusedUpload], summary: IngestSummary | None
) -> list[UploadRow]:
    """Refused uploads first, then each ingested file's outcome, named as the user uploaded it."""
    names = {str(upload.path): upload.name for upload in uploads}
    rows = [UploadRow(item.name, "refused", 0, item.reason) for item in refused]
    for outcome in summary.outcomes if summary else []:
        rows.append(
            UploadRow(names.get(outcome.path, outcome.path), outcome.status, outcome.entries, outcome.reason or "")
        )
    return rows
