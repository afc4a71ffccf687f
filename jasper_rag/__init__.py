"""jasper_rag: distil big embedding models into a small fast student and serve it in search.

``JasperEncoder`` and ``load_encoder`` are imported lazily, so light commands (``--help``, the
store) start without loading torch and transformers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jasper_rag.encoder import JasperEncoder, load_encoder

__all__ = ["JasperEncoder", "load_encoder"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in __all__:
        from jasper_rag import encoder

        return getattr(encoder, name)
    raise AttributeError(f"module 'jasper_rag' has no attribute {name!r}")
