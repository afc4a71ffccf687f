"""FAQ matcher: a user question -> the stored FAQ entry it paraphrases, or an abstention with its reason.

The abstention rule (``FAQRule``) answers when the best entry's cosine reaches *this FAQ's* threshold
and leads the runner-up entry by a margin. The threshold adapts to the FAQ at hand without labels: it
is a reference cosine read off the stored questions themselves (``FAQProfile``: each stored question,
asked of the FAQ without its own entry, is a question that FAQ cannot answer; its best cosine is what
an unanswerable on-topic question scores there) plus an offset. The offset and the margin are
calibrated per model on the project's FAQ-style development FAQs (``jasper_rag.eval.faq_dev``,
``jasper-rag calibrate-faq``) and stored with the model (``EncoderConfig.extra["faq"]["rule"]``), so
each model carries its own: cosines of different models are not comparable.

A model calibrated before the rule existed carries a plain cosine threshold
(``extra["faq"]["threshold"]``, ``calibrate_faq_threshold``); it is used as before, as is an explicit
``threshold=`` given to the matcher. See docs/faq-calibration.md.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from jasper_rag.embedding import TextEncoder
from jasper_rag.encoder import JasperEncoder
from jasper_rag.eval.data import load_sts_pairs
from jasper_rag.eval.metrics import calibrate_threshold, selective_accuracy
from jasper_rag.search.searcher import Hit, Searcher
from jasper_rag.store import EntryKind

log = logging.getLogger(__name__)

FAQ_KEY = "faq"  # EncoderConfig.extra key of the calibration record
RULE_KEY = "rule"  # key of the FAQ rule inside that record: {mode: FAQRule fields}
ENTRIES_KEY = "entries"  # key, in each stored rule, of the entry vectors it was calibrated on
ENTRY_VECTORS = "question+answer"  # what a stored FAQ entry's vector is made of (FaqEntry.embedding_texts)
PACKAGED_PAIRS = "faq-calibration.tsv"  # default calibration pairs, in jasper_rag/data
MATCH_MODES = ("dense", "hybrid")  # how the matcher ranks the entries (the searcher's modes)
MIN_PROFILE_ENTRIES = 4  # fewer stored questions than this: no FAQ reference, the rule's fallback applies
PROFILE_SAMPLE = 2000  # leave-one-out cosines of at most this many stored questions (evenly spread)


class UncalibratedModelError(RuntimeError):
    """The model carries no calibrated FAQ threshold and none was given."""


@dataclass(frozen=True)
class FAQMatch:
    """A stored FAQ entry and how close the asked question came to it.

    ``score`` is the dense cosine of the question to the entry (whatever ranked it); ``bm25`` and the
    ranks are known when the searcher returns them (hybrid mode)."""

    question: str
    answer: str
    score: float
    path: str
    id: int
    bm25: float | None = None
    dense_rank: int | None = None
    lexical_rank: int | None = None

    @classmethod
    def from_hit(cls, hit: Hit) -> FAQMatch:
        """The hit's dense cosine as ``score`` (a hit of a dense search: its score; no cosine known: -1, so
        that the rule never answers on a lexical score)."""
        cosine = hit.cosine if hit.cosine is not None else (hit.score if hit.mode == "dense" else -1.0)
        return cls(
            question=hit.text,
            answer=hit.answer or "",
            score=float(cosine),
            path=hit.path,
            id=hit.id,
            bm25=_optional_float(hit.bm25),
            dense_rank=hit.dense_rank,
            lexical_rank=hit.lexical_rank,
        )


def _optional_float(value: Any) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


@dataclass(frozen=True)
class FAQProfile:
    """What a stored FAQ says about itself, without labels: how close its entries come to each other.

    ``reference`` is the ``quantile`` of the leave-one-out cosines (each stored question's cosine to
    its nearest *other* entry): the score an on-topic question that this FAQ cannot answer reaches."""

    entries: int
    reference: float | None
    quantile: float

    @classmethod
    def from_vectors(cls, vectors: np.ndarray, quantile: float) -> FAQProfile:
        cosines = leave_one_out_cosines(vectors)
        if len(cosines) < MIN_PROFILE_ENTRIES:
            return cls(len(vectors), None, quantile)
        return cls(len(vectors), float(np.quantile(cosines, quantile)), quantile)


def leave_one_out_cosines(vectors: np.ndarray, sample: int = PROFILE_SAMPLE) -> np.ndarray:
    """Each stored question's best cosine to another entry (unit vectors; at most ``sample`` questions,
    evenly spread, against all entries)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    count = len(vectors)
    if count < 2:
        return np.zeros(0, dtype=np.float32)
    rows = np.unique(np.linspace(0, count - 1, min(count, sample)).round().astype(int))
    best = np.empty(len(rows), dtype=np.float32)
    for start in range(0, len(rows), 256):
        block = rows[start : start + 256]
        similarity = vectors[block] @ vectors.T
        similarity[np.arange(len(block)), block] = -np.inf
        best[start : start + len(block)] = similarity.max(axis=1)
    return best


@dataclass(frozen=True)
class FAQRule:
    """Answer when the best entry's cosine reaches the threshold and leads the runner-up by ``margin``.

    Threshold: with ``relative``, this FAQ's reference cosine (``FAQProfile``, the ``quantile`` of its
    leave-one-out cosines) plus ``offset``; otherwise ``offset`` itself, a fixed cosine. ``fallback``
    is the threshold for an FAQ too small to have a reference (None: the model's plain threshold).
    ``margin`` 0 turns the margin test off."""

    offset: float
    margin: float = 0.0
    quantile: float = 0.5
    relative: bool = True
    fallback: float | None = None

    def threshold(self, profile: FAQProfile | None) -> tuple[float, str]:
        """The cosine an answer needs in this FAQ, and where it comes from (for the reason)."""
        if not self.relative:
            return self.offset, "fixed threshold"
        if profile is None or profile.reference is None:
            if self.fallback is None:
                raise UncalibratedModelError("the FAQ rule needs a fallback threshold for FAQs this small")
            return self.fallback, "fallback threshold: too few FAQ entries for this FAQ's own"
        return profile.reference + self.offset, "this FAQ's threshold"

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> FAQRule:
        known = {name: record[name] for name in cls.__dataclass_fields__ if name in record}
        return cls(**known)


@dataclass(frozen=True)
class Decision:
    """Whether to answer with the best candidate, and why (one line, shown to users)."""

    answer: bool
    reason: str
    threshold: float
    margin: float | None = None


def decide(
    candidates: Sequence[FAQMatch], threshold: float, margin: float = 0.0, source: str = "threshold"
) -> Decision:
    """The abstention rule on one question's candidates (best first, by the matcher's ranking).

    Answer when the first candidate's cosine reaches ``threshold`` and, with ``margin`` > 0, leads the
    best cosine among the other candidates by at least ``margin``."""
    if not candidates:
        return Decision(False, "abstained: the store has no FAQ entries", threshold)
    best = candidates[0].score
    others = [c.score for c in candidates[1:]]
    lead = best - max(others) if others else None
    if best < threshold:
        return Decision(False, f"abstained: best match cosine {best:.2f} below {threshold:.2f} ({source})", threshold)
    # A threshold of -1 or less asks nothing of the cosine (a margin-only rule): the reason leaves it out.
    cosine_text = f"best match cosine {best:.2f} >= {threshold:.2f} ({source})" if threshold > -1.0 else ""
    if margin > 0 and lead is not None and lead < margin:
        said = f"{cosine_text} but" if cosine_text else f"best match cosine {best:.2f}"
        return Decision(
            False, f"abstained: {said} only {lead:.2f} ahead of the next entry (needs {margin:.2f})", threshold, lead
        )
    parts = [f"cosine {best:.2f} >= {threshold:.2f} ({source})"] if cosine_text else [f"best match cosine {best:.2f}"]
    if margin > 0:
        parts.append(f"margin {lead:.2f} >= {margin:.2f} over the next entry" if lead is not None else "no other entry")
    reason = "answered: " + (" and " if cosine_text else ", ").join(parts)
    return Decision(True, reason, threshold, lead)


@dataclass(frozen=True)
class FAQLookup:
    """The answer (``match``, None when abstaining), the nearest candidates and why it (did not) answer."""

    match: FAQMatch | None
    candidates: list[FAQMatch] = field(default_factory=list)
    threshold: float = 0.0
    reason: str = ""
    margin: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "match": self.match and asdict(self.match),
            "threshold": self.threshold,
            "margin": self.margin,
            "reason": self.reason,
            "candidates": [asdict(c) for c in self.candidates],
        }


_PROFILES: OrderedDict[tuple, FAQProfile] = OrderedDict()  # (index file, quantile) -> profile
_PROFILES_LOCK = threading.Lock()
_PROFILES_KEPT = 16


class FAQMatcher:
    """Match questions against the store's FAQ entries; abstain by the model's FAQ rule (or ``threshold``).

    ``threshold`` (a cosine) overrides the model's rule with a plain threshold, no margin. ``mode``:
    ``dense`` ranks by cosine; ``hybrid`` by the searcher's fusion of cosine and BM25 (the rule still
    reads each entry's cosine). A model without a rule for ``mode`` but with a plain threshold uses it.
    """

    def __init__(
        self, searcher: Searcher, threshold: float | None = None, dim: int | None = None, mode: str = "dense"
    ) -> None:
        if mode not in MATCH_MODES:
            raise ValueError(f"FAQ match mode must be one of {', '.join(MATCH_MODES)}, not {mode!r}")
        self.searcher = searcher
        self.dim = dim
        self.mode = mode
        stored = searcher.encoder.config.extra.get(FAQ_KEY, {})
        rules = stored.get(RULE_KEY) or {}
        self.rule: FAQRule | None = None
        if threshold is not None:
            self.threshold = float(threshold)
            self.source = "threshold set by hand"
        elif mode in rules:
            self.rule = FAQRule.from_dict(rules[mode])
            if not fitted_on_stored_vectors(rules[mode]):
                log.warning(
                    "the FAQ rule of model '%s' was calibrated on question-only entry vectors: run "
                    "`jasper-rag calibrate-faq MODEL` again (docs/faq-calibration.md)",
                    searcher.encoder.config.source,
                )
            if self.rule.fallback is None and "threshold" in stored:
                self.rule = FAQRule(**{**self.rule.as_dict(), "fallback": float(stored["threshold"])})
            self.threshold = self.rule.fallback if self.rule.fallback is not None else self.rule.offset
            self.source = "this FAQ's threshold"
        elif "threshold" in stored:
            self.threshold = float(stored["threshold"])
            self.source = "the model's calibrated threshold"
        else:
            raise UncalibratedModelError(
                f"model '{searcher.encoder.config.source}' has no calibrated FAQ threshold: run "
                "`jasper-rag calibrate-faq MODEL` or pass threshold="
            )

    @property
    def margin(self) -> float:
        return self.rule.margin if self.rule is not None else 0.0

    def profile(self) -> FAQProfile | None:
        """This store's FAQ profile for the rule (cached per index generation; None without a relative rule)."""
        if self.rule is None or not self.rule.relative:
            return None
        store = self.searcher.store
        store.refresh()
        head = self.searcher.head_for(self.dim)
        state = store.index_states().get((EntryKind.FAQ, head))
        if state is None:
            return FAQProfile(0, None, self.rule.quantile)
        key = (str(store.index_path(EntryKind.FAQ, head, state.generation)), self.rule.quantile)
        with _PROFILES_LOCK:
            if key in _PROFILES:
                _PROFILES.move_to_end(key)
                return _PROFILES[key]
        index = store.index(EntryKind.FAQ, head)
        ids = index.ids()
        vectors = index.reconstruct(ids) if len(ids) else np.zeros((0, index.dim), dtype=np.float32)
        profile = FAQProfile.from_vectors(vectors, self.rule.quantile)
        with _PROFILES_LOCK:
            _PROFILES[key] = profile
            while len(_PROFILES) > _PROFILES_KEPT:
                _PROFILES.popitem(last=False)
        return profile

    def lookup(self, question: str, candidates: int = 3) -> FAQLookup:
        """The best FAQ entry if the rule answers, else None; always the nearest few and the reason."""
        return self.lookup_batch([question], candidates)[0]

    def lookup_batch(self, questions: Sequence[str], candidates: int = 3) -> list[FAQLookup]:
        # The fusion the hybrid rule was calibrated with (jasper_rag.eval.faq_dev), whatever the searcher's defaults.
        options = {"dim": self.dim, "kinds": [EntryKind.FAQ], "mode": self.mode, "fusion": "mix", "dense_weight": 0.5}
        results = self.searcher.search_batch(questions, k=max(2, candidates), **options)
        threshold, source = self.threshold, self.source
        if self.rule is not None:
            threshold, source = self.rule.threshold(self.profile())
        lookups = []
        for hits in results:
            nearest = [FAQMatch.from_hit(hit) for hit in hits]
            decision = decide(nearest, threshold, self.margin, source)
            best = nearest[0] if decision.answer else None
            lookups.append(FAQLookup(best, nearest[: max(1, candidates)], threshold, decision.reason, self.margin))
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


def fitted_on_stored_vectors(rule: dict[str, Any]) -> bool:
    """Whether a stored rule was calibrated on the entry vectors stores make today (``ENTRY_VECTORS``)."""
    return rule.get(ENTRIES_KEY) == ENTRY_VECTORS


def is_current_rule(record: dict[str, Any]) -> bool:
    """Whether a model's stored FAQ record (``extra["faq"]``) has a rule for every mode, each
    ``fitted_on_stored_vectors``."""
    rules = record.get(RULE_KEY) or {}
    return all(mode in rules and fitted_on_stored_vectors(rules[mode]) for mode in MATCH_MODES)


def store_calibration(
    encoder: JasperEncoder, calibration: Calibration, folder: str | Path, rules: dict[str, Any] | None = None
) -> None:
    """Record the calibration (and the FAQ rule per mode) in the model's config and re-save the model
    folder (atomically)."""
    encoder.config.extra[FAQ_KEY] = {**calibration.as_dict(), **({RULE_KEY: rules} if rules else {})}
    encoder.save(folder)
