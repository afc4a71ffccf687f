"""``make bench`` / ``jasper-rag bench``: speed, memory and scale, side by side with the baselines.

Sections (each a module): ``encoding`` (texts/s and latency of the student, its ONNX / int8
variants, each teacher and the ensemble), ``search`` (index types per head dimension and corpus
size, with the exact ``compact_index``), ``ingestion`` (pipeline overhead), ``training``
(examples/s per stage). ``run.run_bench`` runs them in one process and ``report`` writes
``reports/bench.{json,md,png}`` and the README's performance table.
"""
