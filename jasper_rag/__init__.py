"""jasper_rag: distil big embedding models into a small fast student and serve it in search."""

from jasper_rag.encoder import JasperEncoder, load_encoder

__all__ = ["JasperEncoder", "load_encoder"]
__version__ = "0.1.0"
