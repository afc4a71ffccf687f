"""Search over the store: dense, lexical and hybrid search, the FAQ matcher, LangChain adapters.

Names are imported lazily so that ``jasper_rag.search.cli`` can register its commands without
loading torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jasper_rag.search.faq import FAQLookup, FAQMatch, FAQMatcher
    from jasper_rag.search.options import SearchOptions
    from jasper_rag.search.searcher import EmptyStoreError, Hit, Searcher

_HOMES = {
    "EmptyStoreError": "searcher",
    "Hit": "searcher",
    "Searcher": "searcher",
    "SearchOptions": "options",
    "FAQLookup": "faq",
    "FAQMatch": "faq",
    "FAQMatcher": "faq",
}
__all__ = ["EmptyStoreError", "FAQLookup", "FAQMatch", "FAQMatcher", "Hit", "SearchOptions", "Searcher"]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(f"jasper_rag.search.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'jasper_rag.search' has no attribute {name!r}")
