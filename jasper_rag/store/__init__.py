"""The store: SQL metadata (SQLAlchemy) and one inner-product vector index per (entry kind, model head), in FAISS
files (the default) or Milvus (``JASPER_STORE``; ``vectors.VectorBackend``)."""

from jasper_rag.store.heads import (
    POOLED,
    ModelIdentity,
    embed_entry_heads,
    embed_heads,
    encoder_heads,
    model_identity,
)
from jasper_rag.store.models import Chunk, DocumentStatus, EntryKind, FaqEntry, ImageEntry
from jasper_rag.store.store import (
    DocumentRecord,
    DocumentView,
    EntryView,
    Store,
    StoreModelMismatchError,
)
from jasper_rag.store.vector_index import IndexTrainingError, VectorIndex
from jasper_rag.store.vectors import StoreBackendError, StoreFolderMismatchError, VectorSearch

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
    "StoreBackendError",
    "StoreFolderMismatchError",
    "StoreModelMismatchError",
    "VectorIndex",
    "VectorSearch",
    "embed_entry_heads",
    "embed_heads",
    "encoder_heads",
    "model_identity",
]
