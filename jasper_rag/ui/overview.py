"""What the About tab shows: the model, its heads, entries per kind, the index files and the eval table."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from jasper_rag.store import Store

KIND_NAMES = {"chunk": "text chunks", "faq": "FAQ entries", "image": "images"}


@dataclass(frozen=True)
class IndexRow:
    """One FAISS index of the store."""

    kind: str
    head: str
    dim: int
    factory: str
    vectors: int
    size_kb: float


@dataclass(frozen=True)
class StoreOverview:
    model: str | None
    heads: dict[str, int]
    entries: dict[str, int]  # kind -> vectors in its index
    documents: dict[str, int]  # status -> number of files
    file_types: dict[str, int]  # file type -> number of ingested files
    indexes: list[IndexRow]

    @property
    def empty(self) -> bool:
        return not any(self.entries.values())


def index_size_kb(store: Store, kind: str, head: str, generation: int) -> float:
    path = store.index_path(kind, head, generation)
    return path.stat().st_size / 1024 if path.is_file() else 0.0


def store_overview(store: Store) -> StoreOverview:
    """Facts about the store as of its last commit."""
    store.refresh()
    states = store.index_states()
    rows = [
        IndexRow(kind, head, state.dim, state.factory, state.count, index_size_kb(store, kind, head, state.generation))
        for (kind, head), state in sorted(states.items(), key=lambda item: (item[0][0], -item[1].dim))
    ]
    entries: dict[str, int] = {}
    for row in rows:
        entries[row.kind] = max(entries.get(row.kind, 0), row.vectors)
    documents = store.documents()
    return StoreOverview(
        model=store.model.source if store.model else None,
        heads=store.heads,
        entries=entries,
        documents=dict(Counter(doc.status for doc in documents)),
        file_types=dict(Counter(doc.file_type for doc in documents if doc.status == "ingested")),
        indexes=rows,
    )


def eval_table(reports_dir: Path) -> str | None:
    """The first Markdown table of ``reports/eval.md`` (written by ``make eval``), or None."""
    path = reports_dir / "eval.md"
    if not path.is_file():
        return None
    lines: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("|"):
            lines.append(line)
        elif lines:
            break
    return "\n".join(lines) or None
