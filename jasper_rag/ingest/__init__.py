"""Ingestion: file loaders, chunking by the student's tokenizer, and the pipeline into the store."""
