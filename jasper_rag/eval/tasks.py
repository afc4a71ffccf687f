"""Evaluation tasks: each embeds its texts with any ``TextEncoder`` and returns named scores.

A task has a ``name``, a ``main_metric``, the ``texts`` it embeds, a ``corpus_sample`` (what a
baseline such as PCA may be fitted on: documents only, never labels) and ``evaluate(encoder)``.
New kinds of task (e.g. image retrieval) implement the same four members.

Scores are x100 (as MTEB reports them), except the FAQ threshold, which is a raw cosine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from jasper_rag.embedding import TextEncoder, for_role, normalize_rows
from jasper_rag.eval.data import (
    BeirSet,
    EvalDataError,
    ScoredPair,
    is_beir_folder,
    load_beir,
    load_sts_pairs,
    missing_eval_files,
    no_eval_data,
)
from jasper_rag.eval.metrics import (
    calibrate_threshold,
    mrr_at_k,
    ndcg_at_k,
    pearson,
    rank_documents,
    recall_at_k,
    selective_accuracy,
    spearman,
)

Scores = dict[str, float | None]


class Task(Protocol):
    """What the runner needs from a task."""

    name: str
    main_metric: str

    def texts(self) -> list[str]:
        """Every text the task embeds (timed for encode seconds; checked against the cache)."""
        ...

    def corpus_sample(self, size: int, seed: int = 0) -> list[str]:
        """Up to ``size`` documents (no labels) for fitting baselines such as PCA."""
        ...

    def evaluate(self, encoder: TextEncoder, batch_size: int = 32) -> Scores:
        """Named scores of ``encoder`` on this task."""
        ...


def _embed(encoder: TextEncoder, texts: Sequence[str], batch_size: int) -> np.ndarray:
    """Unit-length vectors (re-normalised, so dot products are cosines whatever the encoder)."""
    return normalize_rows(encoder.encode(list(texts), batch_size=batch_size, show_progress=True))


def _sample(texts: Sequence[str], size: int, seed: int) -> list[str]:
    if len(texts) <= size:
        return list(texts)
    picks = np.random.default_rng(seed).choice(len(texts), size=size, replace=False)
    return [texts[i] for i in sorted(picks)]


class RetrievalTask:
    """BEIR-style retrieval scored like MTEB: cosine, nDCG@10 (main), Recall@100, MRR@10.

    Every query with judgements in the qrels is scored; documents are ``f"{title} {text}".strip()``.
    """

    main_metric = "ndcg_at_10"

    def __init__(self, name: str, data: BeirSet, top_k: int = 100, query_chunk: int = 256) -> None:
        self.name = name
        self.data = data
        self.top_k = top_k
        self.query_chunk = query_chunk
        self.doc_ids = list(data.corpus)
        self.query_ids = [query_id for query_id in data.queries if query_id in data.qrels]

    @classmethod
    def from_folder(cls, folder: str | Path, name: str | None = None) -> RetrievalTask:
        folder = Path(folder)
        return cls(name or folder.name, load_beir(folder))

    def texts(self) -> list[str]:
        return [self.data.corpus[i] for i in self.doc_ids] + [self.data.queries[i] for i in self.query_ids]

    def corpus_sample(self, size: int, seed: int = 0) -> list[str]:
        return _sample([self.data.corpus[i] for i in self.doc_ids], size, seed)

    def rankings(self, encoder: TextEncoder, batch_size: int = 32) -> dict[str, list[str]]:
        """The top ``top_k`` document ids of every judged query, in trec_eval order."""
        docs = _embed(for_role(encoder, "passage"), [self.data.corpus[i] for i in self.doc_ids], batch_size)
        queries = _embed(for_role(encoder, "query"), [self.data.queries[i] for i in self.query_ids], batch_size)
        k = min(self.top_k, len(self.doc_ids))
        rankings: dict[str, list[str]] = {}
        for start in range(0, len(self.query_ids), self.query_chunk):
            similarity = queries[start : start + self.query_chunk] @ docs.T
            top = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
            for row, query_id in enumerate(self.query_ids[start : start + self.query_chunk]):
                hits = {self.doc_ids[col]: float(similarity[row, col]) for col in top[row]}
                rankings[query_id] = rank_documents(hits)
        return rankings

    def evaluate(self, encoder: TextEncoder, batch_size: int = 32) -> Scores:
        rankings = self.rankings(encoder, batch_size)
        qrels = self.data.qrels

        def mean(metric, k: int) -> float:
            return 100 * float(np.mean([metric(rankings[q], qrels[q], k) for q in self.query_ids]))

        return {
            "ndcg_at_10": mean(ndcg_at_k, 10),
            "recall_at_100": mean(recall_at_k, 100),
            "mrr_at_10": mean(mrr_at_k, 10),
        }


class STSTask:
    """Semantic textual similarity: Spearman (main) and Pearson of cosine against the gold scores."""

    main_metric = "spearman"

    def __init__(self, name: str, pairs: Sequence[ScoredPair]) -> None:
        self.name = name
        self.pairs = list(pairs)

    @classmethod
    def from_file(cls, path: str | Path, name: str = "STSBenchmark") -> STSTask:
        return cls(name, load_sts_pairs(path))

    def texts(self) -> list[str]:
        return list(dict.fromkeys(text for pair in self.pairs for text in (pair.first, pair.second)))

    def corpus_sample(self, size: int, seed: int = 0) -> list[str]:
        return _sample(self.texts(), size, seed)

    def evaluate(self, encoder: TextEncoder, batch_size: int = 32) -> Scores:
        texts = self.texts()
        vectors = dict(zip(texts, _embed(for_role(encoder, "symmetric"), texts, batch_size), strict=True))
        cosine = np.array([float(vectors[p.first] @ vectors[p.second]) for p in self.pairs])
        gold = np.array([p.gold for p in self.pairs])
        return {"spearman": 100 * spearman(cosine, gold), "pearson": 100 * pearson(cosine, gold)}


class FAQTask:
    """FAQ matching: each question must find its paraphrase among every candidate answer.

    Built from sentence pairs whose gold similarity is at least ``min_gold`` (STS Benchmark test:
    4 of 5, "mostly equivalent"): the first sentence is the question, the second its match; the
    candidates are all distinct second sentences. Scores:

    - ``top1_accuracy`` (main): share of questions whose most similar candidate is a match;
    - ``accuracy_at_threshold`` / ``coverage_at_threshold``: the questions are split in two halves
      (seeded shuffle); on the first, the abstain threshold is the lowest top-1 cosine that keeps
      precision >= ``target_precision``; on the second half, the share answered (coverage) and the
      share of answers that are right (accuracy; None when nothing is answered) are reported;
    - ``threshold``: that calibrated cosine (raw, not x100; None when no threshold reaches the target).
    """

    main_metric = "top1_accuracy"

    def __init__(
        self,
        name: str,
        pairs: Sequence[ScoredPair],
        min_gold: float = 4.0,
        target_precision: float = 0.95,
        seed: int = 0,
    ) -> None:
        self.name = name
        self.target_precision = target_precision
        matches: dict[str, set[str]] = {}
        for pair in pairs:
            if pair.gold >= min_gold:
                matches.setdefault(pair.first, set()).add(pair.second)
        if len(matches) < 2:
            raise ValueError(f"{name}: fewer than 2 question/paraphrase pairs with gold >= {min_gold}")
        self.matches = matches
        self.questions = list(matches)
        self.candidates = list(dict.fromkeys(pair.second for pair in pairs if pair.gold >= min_gold))
        order = np.random.default_rng(seed).permutation(len(self.questions))
        self.calibration_rows = np.sort(order[: len(order) // 2])
        self.test_rows = np.sort(order[len(order) // 2 :])

    @classmethod
    def from_sts_file(cls, path: str | Path, name: str = "FAQ-STSB", **options: float) -> FAQTask:
        return cls(name, load_sts_pairs(path), **options)

    def texts(self) -> list[str]:
        return list(dict.fromkeys(self.questions + self.candidates))

    def corpus_sample(self, size: int, seed: int = 0) -> list[str]:
        return _sample(self.texts(), size, seed)

    def evaluate(self, encoder: TextEncoder, batch_size: int = 32) -> Scores:
        texts = self.texts()
        vectors = dict(zip(texts, _embed(for_role(encoder, "symmetric"), texts, batch_size), strict=True))
        questions = np.stack([vectors[q] for q in self.questions])
        candidates = np.stack([vectors[c] for c in self.candidates])
        similarity = questions @ candidates.T
        best = similarity.argmax(axis=1)
        top_scores = similarity[np.arange(len(best)), best]
        correct = np.array([self.candidates[b] in self.matches[q] for q, b in zip(self.questions, best, strict=True)])
        threshold = calibrate_threshold(
            top_scores[self.calibration_rows], correct[self.calibration_rows], self.target_precision
        )
        accuracy, coverage = selective_accuracy(top_scores[self.test_rows], correct[self.test_rows], threshold)
        return {
            "top1_accuracy": 100 * float(correct.mean()),
            "accuracy_at_threshold": None if accuracy is None else 100 * accuracy,
            "coverage_at_threshold": 100 * coverage,
            "threshold": None if math.isinf(threshold) else threshold,
        }


STS_BENCHMARK_FILE = "stsbenchmark/sts-test.csv"


def load_task(spec: str, eval_dir: str | Path, faq_target_precision: float = 0.95) -> Task:
    """A task from its name: ``stsbenchmark``, ``faq`` (both from the STS Benchmark test file),
    ``images`` / ``zeroshot`` (held-out captioned images, models with a vision tower), a
    BEIR folder name inside ``eval_dir`` (e.g. ``scifact``), a path to any BEIR folder, or a path to
    an STS-format file."""
    eval_dir = Path(eval_dir)
    key = spec.lower()
    if key in {"stsbenchmark", "stsb"}:
        return STSTask.from_file(eval_dir / STS_BENCHMARK_FILE)
    if key == "faq":
        return FAQTask.from_sts_file(eval_dir / STS_BENCHMARK_FILE, target_precision=faq_target_precision)
    if key in {"images", "zeroshot"}:  # the held-out captioned images of `make images` (vision models)
        from jasper_rag.config import get_settings
        from jasper_rag.eval.image_tasks import ImageCaptionTask, ZeroShotTask

        task = ImageCaptionTask if key == "images" else ZeroShotTask
        return task.from_folder(get_settings().images_dir)
    path = Path(spec)
    folder = path if path.is_dir() else eval_dir / spec
    if is_beir_folder(folder):
        return RetrievalTask.from_folder(folder)
    if path.is_file():
        return STSTask.from_file(path, name=path.stem)
    missing = missing_eval_files(eval_dir)
    if key == "scifact" and any(name.startswith("scifact/") for name in missing):
        raise no_eval_data(eval_dir, next(name for name in missing if name.startswith("scifact/")))
    raise EvalDataError(
        f"task '{spec}': expected 'stsbenchmark', 'faq', 'images', 'zeroshot', a BEIR folder "
        f"(corpus.jsonl, queries.jsonl, qrels/test.tsv) inside {eval_dir} or at that path, or an STS-format file"
    )
