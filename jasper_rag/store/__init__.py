"""The store: SQL metadata (SQLAlchemy) and one FAISS inner-product index per (entry kind, model head)."""

from jasper_rag.store.heads import POOLED, ModelIdentity, embed_heads, encoder_heads, model_identity
from jasper_rag.store.models import Chunk, DocumentStatus, EntryKind, FaqEntry, ImageEntry
from jasper_rag.store.store import (
    DocumentRecord,
    DocumentView,
    EntryView,
    Store,
    StoreFolderMismatchError,
    StoreModelMismatchError,
)
from jasper_rag.store.vector_index import IndexTrainingError, VectorIndex

__all__ = [
    "POOLED",
    "Chunk",
    "DocumentRecord",
    "DocumentStatus",
    "DocumentView",
    "EntryKind",
    "EntryView",
    "FaqEntry",
    "ImageEntry",
    "IndexTrainingError",
    "ModelIdentity",
    "Store",
    "StoreFolderMismatchError",
    "StoreModelMismatchError",
    "VectorIndex",
    "embed_heads",
    "encoder_heads",
    "model_identity",
]
