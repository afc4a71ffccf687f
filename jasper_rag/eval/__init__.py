"""MTEB-style evaluation: tasks (retrieval, STS, FAQ), metrics, baselines, reports.

Entry point: ``jasper_rag.eval.run.run_eval`` (``jasper-rag eval``, ``make eval``). Users with
internet can run the official ``mteb`` package through ``jasper_rag.eval.mteb_adapter.MTEBModel``.
"""
