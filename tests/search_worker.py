"""A search load for the concurrency test, run in threads and as ``python -m tests.search_worker``.

It searches a store again and again while another process ingests into it, and counts searches,
errors and torn reads. A read is torn when a loaded index does not hold exactly the vectors its SQL
generation says (a half-written file), or a hit names no row (vectors ahead of or behind the SQL
rows; the ingest under test only adds files, so every hit must resolve).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from jasper_rag.search import Searcher
from jasper_rag.store import EntryKind, Store
from tests.ingest_support import load_tiny

QUERIES = ("the cat sat on the mat", "protein cell study", "river city capital", "fast car on the road")


@dataclass
class SearchLoad:
    searches: int = 0
    errors: list[str] = field(default_factory=list)
    torn: int = 0
    generations: set[int] = field(default_factory=set)
    most_vectors: int = 0


def search_until(url: str, index_dir: str, model_dir: str, deadline: float, stop=None) -> SearchLoad:
    """Search until ``deadline`` (``time.time()``) or until ``stop()`` is true; one store of its own."""
    load = SearchLoad()
    store = Store(url, index_dir)
    searcher = Searcher(store, load_tiny(model_dir))
    key = (EntryKind.CHUNK, "full")
    try:
        while time.time() < deadline and not (stop and stop()):
            try:
                hits = searcher.search(QUERIES[load.searches % len(QUERIES)], k=10)
                state = store.index_states()[key]
                index = store.index(*key)
                if store.index_states()[key].generation == state.generation and index.ntotal != state.count:
                    load.torn += 1
                ids = index.search(searcher.embed_queries(["cat"])["full"], 20)[1][0]
                ids = [int(i) for i in ids if i >= 0]
                load.torn += len(ids) - len(store.fetch(ids))
                load.torn += sum(not hit.text for hit in hits)
                load.generations.add(state.generation)
                load.most_vectors = max(load.most_vectors, index.ntotal)
            except Exception as err:  # counted, not raised: the test reports every error
                load.errors.append(f"{type(err).__name__}: {err}")
            load.searches += 1
    finally:
        store.close()
    return load


def main(url: str, index_dir: str, model_dir: str, stop_file: str, max_seconds: str) -> None:
    """Search until ``stop_file`` exists (at most ``max_seconds``); print the counts as JSON."""
    import torch

    torch.set_num_threads(1)
    stop = Path(stop_file)
    load = search_until(url, index_dir, model_dir, time.time() + float(max_seconds), stop.exists)
    print(json.dumps({**asdict(load), "generations": sorted(load.generations)}))


if __name__ == "__main__":
    main(*sys.argv[1:])
