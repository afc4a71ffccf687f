"""Search over the store: exact and funnel search, the FAQ matcher, LangChain adapters."""

from jasper_rag.search.faq import FAQLookup, FAQMatch, FAQMatcher
from jasper_rag.search.searcher import EmptyStoreError, Hit, Searcher

__all__ = ["EmptyStoreError", "FAQLookup", "FAQMatch", "FAQMatcher", "Hit", "Searcher"]
