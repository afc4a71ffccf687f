"""What the Milvus backend's vector side (``milvus_vectors``) and lexical side (``milvus_lexical``) share:
Milvus's limits, batching, reading every stored id, and a search filter as a Milvus expression."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from jasper_rag.store.vectors import EntryFilter

WRITE_BATCH = 1000  # rows per upsert, ids per delete or get
MAX_LIMIT = 16384  # Milvus's largest top-k


def batches(items: Sequence, size: int = WRITE_BATCH) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def stored_ids(client, collection: str, where: str = "") -> np.ndarray:
    """Every id of ``collection`` whose row matches the expression ``where`` (in no particular order)."""
    found: list[int] = []
    iterator = client.query_iterator(collection, batch_size=WRITE_BATCH * 4, filter=where, output_fields=["id"])
    try:
        while batch := iterator.next():
            found.extend(row["id"] for row in batch)
    finally:
        iterator.close()
    return np.asarray(found, dtype=np.int64)


def literal(text: str) -> str:
    """``text`` as a Milvus string literal: double quotes, with backslashes, quotes and line breaks escaped, so
    that no user text can end the literal or add to the expression."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def starts_with(field: str, prefix: str) -> str:
    """``field`` starts with ``prefix`` (which ends in ``.`` or ``/``), as a range of strings: Milvus's LIKE
    cannot escape ``%`` and ``_`` on every version, nor match a backslash in Milvus Lite; a range needs no
    wildcards (VARCHARs compare by code point, as UTF-8 bytes do)."""
    above = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return f"({field} >= {literal(prefix)} and {field} < {literal(above)})"


def filter_expression(where: EntryFilter) -> str:
    """The Milvus expression of ``where``, matching exactly the entries ``Store.entry_ids`` gives: a file type
    equal to one of the types, or a lower-cased path ending in ``.<type>`` (its reversal starting with
    ``<reversed type>.``); a path equal to a folder or starting with ``<folder>/``."""
    parts = []
    if where.file_types:
        types = [f"file_type in [{', '.join(literal(t) for t in where.file_types)}]"]
        types += [starts_with("reversed_path", t[::-1] + ".") for t in where.file_types]
        parts.append("(" + " or ".join(types) + ")")
    if where.folders:
        folders = [f"path == {literal(f)} or {starts_with('path', f + '/')}" for f in where.folders]
        parts.append("(" + " or ".join(folders) + ")")
    return " and ".join(parts)
