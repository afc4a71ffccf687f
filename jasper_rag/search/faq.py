"""FAQ matcher: a user question -> the stored FAQ entry it paraphrases, or an abstention.

The threshold is a raw cosine calibrated on labelled pairs for a target precision
(``calibrate_faq_threshold``) and stored with the model (``EncoderConfig.extra["faq"]``), so each
model carries its own: cosines of different models are not comparable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from jasper_rag.embedding import TextEncoder
from jasper_rag.encoder import JasperEncoder
from jasper_rag.eval.data import load_sts_pairs
from jasper_rag.eval.metrics import calibrate_threshold, selective_accuracy
from jasper_rag.search.searcher import Hit, Searcher
from jasper_rag.store import EntryKind

FAQ_KEY = "faq"  # EncoderConfig.extra key of the calibration record
PACKAGED_PAIRS = "faq-calibration.tsv"  # default calibration pairs, in jasper_rag/data


class UncalibratedModelError(RuntimeError):
    """The model carries no calibrated FAQ threshold and none was given."""


@dataclass(frozen=True)
class FAQMatch:
    """A stored FAQ entry and how close the asked question came to it."""

    question: str
    answer: str
    score: float
    path: str
    id: int

    @classmethod
    def from_hit(cls, hit: Hit) -> FAQMatch:
        return cls(question=hit.text, answer=hit.answer or "", score=hit.score, path=hit.path, id=hit.id)


@dataclass(frozen=True)
class FAQLookup:
    """The answer (``match``, None when abstaining) plus the nearest candidates, for display."""

    match: FAQMatch | None
    candidates: list[FAQMatch] = field(default_factory=list)
    threshold: float = 0.0


class FAQMatcher:
    """Match questions against the store's FAQ entries, abstaining below the model's threshold."""

    def __init__(self, searcher: Searcher, threshold: float | None = None, dim: int | None = None) -> None:
        self.searcher = searcher
        self.dim = dim
        stored = searcher.encoder.config.extra.get(FAQ_KEY, {})
        if threshold is None and "threshold" not in stored:
            raise UncalibratedModelError(
                f"model '{searcher.encoder.config.source}' has no calibrated FAQ threshold: run "
                "`jasper-rag calibrate-faq MODEL` or pass threshold="
            )
        self.threshold = float(threshold if threshold is not None else stored["threshold"])

    def lookup(self, question: str, candidates: int = 3) -> FAQLookup:
        """The best FAQ entry if its cosine reaches the threshold, else None; always the nearest few."""
        return self.lookup_batch([question], candidates)[0]

    def lookup_batch(self, questions: Sequence[str], candidates: int = 3) -> list[FAQLookup]:
        results = self.searcher.search_batch(questions, k=max(1, candidates), dim=self.dim, kinds=[EntryKind.FAQ])
        lookups = []
        for hits in results:
            nearest = [FAQMatch.from_hit(hit) for hit in hits]
            best = nearest[0] if nearest and nearest[0].score >= self.threshold else None
            lookups.append(FAQLookup(best, nearest, self.threshold))
        return lookups


@dataclass(frozen=True)
class Calibration:
    """A calibrated threshold and what it achieved on the calibration pairs."""

    threshold: float
    target_precision: float
    precision: float | None
    coverage: float
    questions: int
    source: str

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def calibrate_faq_threshold(
    encoder: TextEncoder,
    bank: Sequence[str],
    questions: Sequence[str],
    expected: Sequence[int | None],
    target_precision: float = 0.9,
    source: str = "",
) -> Calibration:
    """Lowest cosine threshold whose answers reach ``target_precision`` on labelled questions.

    ``expected[i]`` is the index in ``bank`` of the entry question ``i`` paraphrases, or None for
    an unrelated question (any answer to it is wrong, so the threshold learns to abstain).
    """
    if not bank or len(questions) != len(expected):
        raise ValueError("calibration needs a non-empty bank and one expected index per question")
    bank_vectors = encoder.encode(list(bank))
    question_vectors = encoder.encode(list(questions))
    similarity = question_vectors @ bank_vectors.T
    best = similarity.argmax(axis=1)
    top = similarity[np.arange(len(best)), best]
    correct = np.array([want is not None and int(b) == want for b, want in zip(best, expected, strict=True)])
    threshold = calibrate_threshold(top, correct, target_precision)
    precision, coverage = selective_accuracy(top, correct, threshold)
    return Calibration(float(threshold), target_precision, precision, coverage, len(questions), source)


def packaged_calibration_pairs():
    """The FAQ calibration pairs shipped with the package (``jasper_rag/data/faq-calibration.tsv``).

    Hand-written FAQ-style questions in the STS Benchmark format (see docs/faq-calibration.md); an
    ``importlib.resources`` Traversable, so it is found in an installed wheel too.
    """
    return resources.files("jasper_rag") / "data" / PACKAGED_PAIRS


def sts_calibration_set(path: str | Path, paraphrase_gold: float = 4.0, unrelated_gold: float = 2.5):
    """FAQ calibration data from an STS-format file: (bank, questions, expected).

    Pairs with gold >= ``paraphrase_gold`` give a bank entry (second sentence) and its paraphrase
    (first sentence); pairs with gold <= ``unrelated_gold`` ("not equivalent" on the STS scale) give
    questions no entry answers (first sentence). Pairs in between (roughly equivalent, some important
    detail differs) are ambiguous for an FAQ and left out. A sentence that is the second of several
    paraphrase pairs is one bank entry; a question is used once.
    """
    pairs = load_sts_pairs(path)
    bank: list[str] = []
    index: dict[str, int] = {}
    questions: list[str] = []
    expected: list[int | None] = []
    asked: set[str] = set()
    for pair in pairs:
        if pair.gold >= paraphrase_gold and pair.first not in asked:
            if pair.second not in index:
                index[pair.second] = len(bank)
                bank.append(pair.second)
            asked.add(pair.first)
            questions.append(pair.first)
            expected.append(index[pair.second])
    for pair in pairs:
        if pair.gold <= unrelated_gold and pair.first not in index and pair.first not in asked:
            asked.add(pair.first)
            questions.append(pair.first)
            expected.append(None)
    return bank, questions, expected


def store_calibration(encoder: JasperEncoder, calibration: Calibration, folder: str | Path) -> None:
    """Record the calibration in the model's config and re-save the model folder (atomically)."""
    encoder.config.extra[FAQ_KEY] = calibration.as_dict()
    encoder.save(folder)
