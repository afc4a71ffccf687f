"""What is in a store and taking documents out of it: ``jasper-rag list`` and ``jasper-rag remove``.

Removal goes through ``Store.commit([], paths)``, the one way documents leave a store (ingest uses it
for files gone from an ingested folder): rows, every head's FAISS vectors and the lexical entries go in
one crash-safe commit, under the writer lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import func, select

from jasper_rag.ingest.pipeline import absolute, is_under
from jasper_rag.store import DocumentStatus, Store
from jasper_rag.store.models import Document, Entry

STATUSES = (DocumentStatus.INGESTED, DocumentStatus.NOT_EMBEDDED, DocumentStatus.FAILED, DocumentStatus.STALE)


@dataclass(frozen=True)
class DocumentInfo:
    """One document as ``jasper-rag list`` shows it; ``reason``: why it failed, is stale or not embedded."""

    path: str
    file_type: str
    status: str
    entries: int
    size_bytes: int | None
    updated: str | None  # ISO 8601, UTC
    reason: str | None

    def as_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "type": self.file_type,
            "status": self.status,
            "entries": self.entries,
            "size_bytes": self.size_bytes,
            "updated": self.updated,
            "reason": self.reason,
        }


def _iso(moment: datetime | None) -> str | None:
    """UTC ISO 8601 to the second (SQLite hands back naive datetimes, stored in UTC)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def list_documents(store: Store, status: str | None = None, under: Path | None = None) -> list[DocumentInfo]:
    """The documents of ``store`` by path, optionally of one ``status`` and at or under the folder ``under``."""
    counts = select(Entry.document_id, func.count().label("n")).group_by(Entry.document_id).subquery()
    query = select(Document, func.coalesce(counts.c.n, 0)).outerjoin(counts, counts.c.document_id == Document.id)
    if status is not None:
        query = query.where(Document.status == status)
    folder = [absolute(under)] if under is not None else None
    with store.sessions() as session:
        return [
            DocumentInfo(
                doc.path,
                doc.file_type,
                doc.status,
                int(n),
                doc.size_bytes,
                _iso(doc.updated_at),
                doc.error if doc.status != DocumentStatus.INGESTED else None,
            )
            for doc, n in session.execute(query.order_by(Document.path))
            if folder is None or is_under(doc.path, folder)
        ]


def _size(size: int | None) -> str:
    if size is None:
        return "-"
    for unit in ("B", "KiB", "MiB"):
        if size < 1024 or unit == "MiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def render_table(documents: list[DocumentInfo]) -> str:
    """One line per document (status, type, entries, size, updated, path), its reason on the next line,
    and a closing count per status."""
    lines = [f"{'STATUS':<13}{'TYPE':<10}{'ENTRIES':>8}{'SIZE':>11}  {'UPDATED (UTC)':<17}PATH"]
    for doc in documents:
        updated = doc.updated[:16].replace("T", " ") if doc.updated else "-"
        lines.append(
            f"{doc.status:<13}{doc.file_type:<10}{doc.entries:>8}{_size(doc.size_bytes):>11}  {updated:<17}{doc.path}"
        )
        if doc.reason:
            lines.append(f"{'':13}reason: {doc.reason}")
    counts = {status: sum(doc.status == status for doc in documents) for status in STATUSES}
    shown = ", ".join(f"{count} {status}" for status, count in counts.items() if count)
    lines.append(f"{len(documents)} documents" + (f": {shown}" if shown else ""))
    return "\n".join(lines)


@dataclass
class Removal:
    """What ``remove_paths`` did: the documents removed (path -> entries) and the given paths that matched none."""

    removed: dict[str, int] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [f"removed {path} ({entries} entries)" for path, entries in self.removed.items()]
        lines += [f"not in the store: {path}" for path in self.unknown]
        total = sum(self.removed.values())
        lines.append(f"removed {len(self.removed)} documents ({total} entries); {len(self.unknown)} paths not found")
        return "\n".join(lines)


def remove_paths(store: Store, paths: list[str | Path]) -> Removal:
    """Remove the documents at ``paths`` (a file, or every document under a folder), rows, vectors of every
    head and lexical entries, in one commit. The files themselves are left alone."""
    result = Removal()
    with store.writer():
        known = {doc.path: doc.entries for doc in store.documents()}
        for given in paths:
            root = absolute(given)
            matched = [path for path in known if is_under(path, [root])]
            if not matched:
                result.unknown.append(str(given))
            result.removed.update((path, known[path]) for path in matched)
        store.commit([], sorted(result.removed))
    return result
