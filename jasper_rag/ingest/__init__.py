"""Ingestion: file loaders, chunking by the student's tokenizer, and the pipeline into the store."""

from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parent / "sample"
"""The built-in sample corpus (every supported file type; installed with the package)."""
