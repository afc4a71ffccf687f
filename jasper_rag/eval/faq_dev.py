"""FAQ abstention on FAQ-style data the project wrote itself: calibration of the FAQ rule and its report.

The data (``jasper_rag/data/faq-dev/``, see its README) is six small FAQs of different domains; each
entry has its stored question and answer, two paraphrased user questions in other words and one
light rewording; each FAQ has unrelated questions (in its domain but not covered, and off-topic).
``splits.json`` splits the FAQs in two halves: ``design`` (rules are chosen and calibrated on it) and
``test`` (held out: only reported).

A question is scored the way ``FAQMatcher`` scores it: the entries ranked by the mode (``dense``:
cosine; ``hybrid``: the searcher's mix fusion of min-max cosine and BM25), the first three candidates
kept, and the rule reads the first candidate's cosine and its lead over the other two
(``jasper_rag.search.faq.decide``). Outcomes per paraphrase: answered with the right entry
(correct), answered with another entry (wrong), abstained; per unrelated question: refused or not.

``jasper-rag eval-faq MODEL`` writes ``reports/faq.md`` and ``reports/faq.json``.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import numpy as np

from jasper_rag.embedding import TextEncoder
from jasper_rag.search.faq import (
    ENTRIES_KEY,
    ENTRY_VECTORS,
    FAQMatch,
    FAQProfile,
    FAQRule,
    calibrate_faq_threshold,
    decide,
    leave_one_out_cosines,
    packaged_calibration_pairs,
    sts_calibration_set,
)
from jasper_rag.search.hybrid import hybrid_rank
from jasper_rag.search.options import SearchOptions
from jasper_rag.store.heads import combine_entry_vectors
from jasper_rag.store.models import faq_embedding_texts

log = logging.getLogger(__name__)

DATA_FOLDER = "faq-dev"
HALVES = ("design", "test")
MODES = ("dense", "hybrid")
CANDIDATES = 3  # FAQMatcher's default: the rule sees the best entry and the next two
MAX_WRONG = 0.05  # the goal: at most 5% of paraphrases answered with a wrong entry
MIN_REFUSED = 0.95  # and at least 95% of unrelated questions refused
PROFILE_QUANTILE = 0.5  # the FAQ's reference cosine: the median leave-one-out cosine of its questions
OFFSETS = tuple(round(x, 2) for x in np.arange(-0.30, 0.301, 0.01))
MARGINS = tuple(round(x, 2) for x in np.arange(0.0, 0.201, 0.01))
COSINES = tuple(round(x, 2) for x in np.arange(0.20, 0.951, 0.01))
SLICES = ("paraphrase", "rewording", "in-domain", "off-topic")


# ===================================================================== data
@dataclass(frozen=True)
class DevEntry:
    question: str
    answer: str
    paraphrases: tuple[str, ...]
    rewording: str


@dataclass(frozen=True)
class DevFAQ:
    """One FAQ: its entries and the unrelated questions ``(question, topic)`` it cannot answer."""

    name: str
    entries: tuple[DevEntry, ...]
    unrelated: tuple[tuple[str, str], ...]

    def questions(self) -> tuple[list[str], list[int | None], list[str]]:
        """(questions, expected entry index or None, slice) in a fixed order."""
        texts: list[str] = []
        expected: list[int | None] = []
        slices: list[str] = []
        for index, entry in enumerate(self.entries):
            for text in entry.paraphrases:
                texts.append(text), expected.append(index), slices.append("paraphrase")
            texts.append(entry.rewording), expected.append(index), slices.append("rewording")
        for text, topic in self.unrelated:
            texts.append(text), expected.append(None), slices.append(topic)
        return texts, expected, slices


def dev_folder() -> Traversable:
    """The packaged development FAQs (``jasper_rag/data/faq-dev``), found in an installed wheel too."""
    return resources.files("jasper_rag") / "data" / DATA_FOLDER


def dev_splits() -> dict[str, list[str]]:
    """FAQ names per half: ``design`` and ``test``."""
    splits = json.loads((dev_folder() / "splits.json").read_text(encoding="utf-8"))
    return {half: list(splits[half]) for half in HALVES}


def load_dev_faq(name: str) -> DevFAQ:
    entries: list[DevEntry] = []
    unrelated: list[tuple[str, str]] = []
    for number, line in enumerate((dev_folder() / f"{name}.jsonl").read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if row["kind"] == "entry":
            if row["id"] != len(entries) + 1:
                raise ValueError(f"{name}.jsonl line {number}: entry ids must run 1, 2, 3, ...")
            entries.append(DevEntry(row["question"], row["answer"], tuple(row["paraphrases"]), row["rewording"]))
        elif row["kind"] == "unrelated":
            unrelated.append((row["question"], row["topic"]))
        else:
            raise ValueError(f"{name}.jsonl line {number}: unknown kind {row['kind']!r}")
    return DevFAQ(name, tuple(entries), tuple(unrelated))


def load_half(half: str) -> list[DevFAQ]:
    return [load_dev_faq(name) for name in dev_splits()[half]]


def merged(faqs: Sequence[DevFAQ], name: str) -> DevFAQ:
    """Several FAQs as one store (a bigger FAQ with several topics)."""
    return DevFAQ(
        name,
        tuple(entry for faq in faqs for entry in faq.entries),
        tuple(question for faq in faqs for question in faq.unrelated),
    )


# ===================================================================== scoring
@dataclass
class ScoredFAQ:
    """One FAQ's questions scored against its entries by one encoder: what the rules read."""

    name: str
    expected: list[int | None]
    slices: list[str]
    questions: list[str]
    bank: list[str]
    profile_cosines: np.ndarray  # leave-one-out cosines of the stored questions
    chosen: dict[str, np.ndarray] = field(default_factory=dict)  # mode -> chosen entry per question
    best: dict[str, np.ndarray] = field(default_factory=dict)  # mode -> its cosine
    lead: dict[str, np.ndarray] = field(default_factory=dict)  # mode -> its lead over the next two (inf: none)
    agree: dict[str, np.ndarray] = field(default_factory=dict)  # mode -> dense and BM25 both put it first

    def reference(self, quantile: float = PROFILE_QUANTILE) -> float | None:
        return FAQProfile(len(self.bank), _quantile(self.profile_cosines, quantile), quantile).reference

    @property
    def answerable(self) -> np.ndarray:
        return np.array([e is not None for e in self.expected])

    def right(self, mode: str) -> np.ndarray:
        return np.array([e is not None and int(c) == e for c, e in zip(self.chosen[mode], self.expected, strict=True)])


def _quantile(values: np.ndarray, quantile: float) -> float | None:
    from jasper_rag.search.faq import MIN_PROFILE_ENTRIES

    return float(np.quantile(values, quantile)) if len(values) >= MIN_PROFILE_ENTRIES else None


def bm25_matrix(bank: Sequence[str], questions: Sequence[str]) -> np.ndarray:
    """BM25 of each question against each stored question (the store's English analysis); nan = no match."""
    from jasper_rag.store.lexical_index import LexicalIndex

    index = LexicalIndex(None)
    index.add(range(1, len(bank) + 1), ["faq"] * len(bank), bank)
    index.commit()
    scores, ids = index.search(list(questions), len(bank))
    out = np.full((len(questions), len(bank)), np.nan)
    for row in range(len(questions)):
        for score, entry in zip(scores[row], ids[row], strict=True):
            if entry > 0:
                out[row, entry - 1] = score
    return out


def _hybrid_ranking(cosines: np.ndarray, lexical: np.ndarray) -> np.ndarray:
    """The entries in the order the searcher's hybrid mode returns them (``hybrid_rank``, mix fusion,
    equal weights, as ``FAQMatcher`` asks for), every entry being in the dense shortlist of an FAQ."""
    dense_ids = np.argsort(-cosines, kind="stable").astype(np.int64)
    matched = np.flatnonzero(np.isfinite(lexical))
    order = matched[np.argsort(-lexical[matched], kind="stable")].astype(np.int64)
    options = SearchOptions(k=len(cosines), mode="hybrid", fusion="mix", dense_weight=0.5, shortlist=len(cosines))
    ids, _, _ = hybrid_rank(dense_ids, lambda ids: cosines[ids], order, lexical[order], options)
    return ids


def entry_vectors(encoder: TextEncoder, entries: Sequence[DevEntry]) -> np.ndarray:
    """The entries' vectors as a store holds them (question and answer together: ``FaqEntry``)."""
    parts = [faq_embedding_texts(entry.question, entry.answer) for entry in entries]
    return combine_entry_vectors(encoder.encode([text for texts in parts for text in texts]), parts)


def score_faq(encoder: TextEncoder, faq: DevFAQ) -> ScoredFAQ:
    questions, expected, slices = faq.questions()
    bank = [entry.question for entry in faq.entries]
    bank_vectors = entry_vectors(encoder, faq.entries)
    cosines = encoder.encode(questions) @ bank_vectors.T
    lexical = bm25_matrix(bank, questions)
    scored = ScoredFAQ(faq.name, expected, slices, questions, bank, leave_one_out_cosines(bank_vectors))
    dense_first = cosines.argmax(axis=1)
    lexical_first = np.where(np.isfinite(lexical).any(axis=1), np.nan_to_num(lexical, nan=-1).argmax(axis=1), -1)
    for mode in MODES:
        if mode == "dense":
            ranking = np.argsort(-cosines, axis=1, kind="stable")
        else:
            ranking = np.stack([_hybrid_ranking(cosines[row], lexical[row]) for row in range(len(questions))])
        top = ranking[:, :CANDIDATES]
        candidate_cosines = np.take_along_axis(cosines, top, axis=1)
        scored.chosen[mode] = top[:, 0]
        scored.best[mode] = candidate_cosines[:, 0]
        others = candidate_cosines[:, 1:]
        no_other = np.full(len(top), np.inf)
        scored.lead[mode] = candidate_cosines[:, 0] - others.max(axis=1) if others.shape[1] else no_other
        scored.agree[mode] = (dense_first == top[:, 0]) & (lexical_first == top[:, 0])
    return scored


# ===================================================================== rules
Answered = Callable[[ScoredFAQ, str], np.ndarray]  # (scored FAQ, mode) -> answered mask


@dataclass(frozen=True)
class Outcome:
    """Counts over some FAQs for one rule and mode."""

    paraphrases: int
    correct: int
    wrong: int
    unrelated: int
    refused: int
    rewordings: int = 0
    rewordings_correct: int = 0
    rewordings_wrong: int = 0
    in_domain: int = 0
    in_domain_refused: int = 0
    off_topic: int = 0
    off_topic_refused: int = 0
    ranked_right: int = 0  # paraphrases whose first entry is the right one (the most any rule can answer)

    def rates(self) -> dict[str, float]:
        share = lambda part, whole: part / whole if whole else math.nan  # noqa: E731
        return {
            "correct": share(self.correct, self.paraphrases),
            "wrong": share(self.wrong, self.paraphrases),
            "refused": share(self.refused, self.unrelated),
            "ranked_right": share(self.ranked_right, self.paraphrases),
            "rewordings_correct": share(self.rewordings_correct, self.rewordings),
            "rewordings_wrong": share(self.rewordings_wrong, self.rewordings),
            "in_domain_refused": share(self.in_domain_refused, self.in_domain),
            "off_topic_refused": share(self.off_topic_refused, self.off_topic),
        }

    def meets_goal(self) -> bool:
        rates = self.rates()
        return rates["wrong"] <= MAX_WRONG and rates["refused"] >= MIN_REFUSED


def outcome(scored: Sequence[ScoredFAQ], mode: str, answered: Answered) -> Outcome:
    counts: dict[str, int] = dict.fromkeys(Outcome.__dataclass_fields__, 0)
    for faq in scored:
        mask = answered(faq, mode)
        right = faq.right(mode)
        slices = np.array(faq.slices)
        for name, kind in (("paraphrases", "paraphrase"), ("rewordings", "rewording")):
            rows = slices == kind
            counts[name] += int(rows.sum())
            counts[f"{name}_correct" if name == "rewordings" else "correct"] += int((mask & right & rows).sum())
            counts[f"{name}_wrong" if name == "rewordings" else "wrong"] += int((mask & ~right & rows).sum())
        counts["ranked_right"] += int((right & (slices == "paraphrase")).sum())
        for name, kind in (("in_domain", "in-domain"), ("off_topic", "off-topic")):
            rows = slices == kind
            counts[name] += int(rows.sum())
            counts[f"{name}_refused"] += int((~mask & rows).sum())
        unrelated = ~faq.answerable
        counts["unrelated"] += int(unrelated.sum())
        counts["refused"] += int((~mask & unrelated).sum())
    return Outcome(**counts)


def rule_answers(rule: FAQRule) -> Answered:
    """The answered mask of an ``FAQRule``, exactly as ``decide`` computes it (vectorised)."""

    def answered(faq: ScoredFAQ, mode: str) -> np.ndarray:
        threshold, _ = rule.threshold(FAQProfile(len(faq.bank), faq.reference(rule.quantile), rule.quantile))
        mask = faq.best[mode] >= threshold
        if rule.margin > 0:
            mask &= faq.lead[mode] >= rule.margin
        return mask

    return answered


def agreement_answers(cosine: float) -> Answered:
    """Answer when dense and BM25 put the same entry first (and it is the chosen one) at ``cosine`` or more."""
    return lambda faq, mode: faq.agree[mode] & (faq.best[mode] >= cosine)


@dataclass(frozen=True)
class Family:
    """A family of rules and its parameter grid; ``make(params)`` -> (rule or None, answered mask)."""

    name: str
    description: str
    grid: tuple[tuple[float, ...], ...]
    make: Callable[..., tuple[FAQRule | None, Answered]]


def families(sts_threshold: float | None) -> list[Family]:
    def fixed(cosine: float, margin: float = 0.0) -> tuple[FAQRule, Answered]:
        rule = FAQRule(offset=cosine, margin=margin, relative=False)
        return rule, rule_answers(rule)

    def relative(offset: float, margin: float = 0.0) -> tuple[FAQRule, Answered]:
        rule = FAQRule(offset=offset, margin=margin, quantile=PROFILE_QUANTILE, fallback=sts_threshold)
        return rule, rule_answers(rule)

    found = [
        Family("cosine", "one cosine threshold for every FAQ", (COSINES,), fixed),
        Family("margin", "lead over the next entry only", (MARGINS,), lambda m: fixed(-1.0, m)),
        Family("cosine+margin", "one cosine threshold and a margin", (COSINES, MARGINS), fixed),
        Family("faq", "this FAQ's threshold: its median leave-one-out cosine + offset", (OFFSETS,), relative),
        Family("faq+margin", "this FAQ's threshold and a margin", (OFFSETS, MARGINS), relative),
        Family(
            "agreement",
            "dense and BM25 put the same entry first, cosine >= threshold",
            (COSINES,),
            lambda c: (None, agreement_answers(c)),
        ),
    ]
    return found


def fit(family: Family, scored: Sequence[ScoredFAQ], mode: str) -> tuple[tuple[float, ...], Outcome]:
    """The parameters of ``family`` answering the most paraphrases correctly within the goal's limits on
    ``scored`` (at most 5% wrong, at least 95% of unrelated refused); when none keeps both, the one
    closest to them. Ties: the more cautious (fewer answered)."""
    best_key: tuple | None = None
    best: tuple[tuple[float, ...], Outcome] | None = None
    for params in itertools.product(*family.grid):
        result = outcome(scored, mode, family.make(*params)[1])
        rates = result.rates()
        excess = max(0.0, rates["wrong"] - MAX_WRONG) + max(0.0, MIN_REFUSED - rates["refused"])
        key = (-round(excess, 9), result.correct, -(result.correct + result.wrong), -result.wrong)
        if best_key is None or key > best_key:
            best_key, best = key, (params, result)
    assert best is not None
    return best


SELECTABLE = ("cosine", "margin", "cosine+margin", "faq", "faq+margin")  # the families an FAQRule expresses


def choose_family(design: Sequence[ScoredFAQ], mode: str, fallback: float | None = None) -> tuple[Family, Outcome]:
    """The rule family to use, chosen on the design half by leave-one-FAQ-out: fitted on all design FAQs
    but one and scored on that one (pooled over the rotations), the family that answers the most
    paraphrases correctly within the goal's limits (or, when none keeps them, the one closest to them)."""
    best_key: tuple | None = None
    best: tuple[Family, Outcome] | None = None
    for family in families(fallback):
        if family.name not in SELECTABLE:
            continue
        pooled = _leave_one_faq_out(family, design, mode)
        rates = pooled.rates()
        excess = max(0.0, rates["wrong"] - MAX_WRONG) + max(0.0, MIN_REFUSED - rates["refused"])
        key = (-round(excess, 9), pooled.correct, -pooled.wrong)
        if best_key is None or key > best_key:
            best_key, best = key, (family, pooled)
    assert best is not None
    return best


def calibrate_faq_rule(
    encoder: TextEncoder, mode: str = "dense", scored: Sequence[ScoredFAQ] | None = None
) -> tuple[FAQRule, str, Outcome]:
    """The FAQ rule for ``encoder`` and ``mode``: the family chosen by ``choose_family``, its parameters
    fitted on the whole design half; a relative rule's fallback (FAQs too small for their own
    threshold) is the best fixed cosine on the design half. Returns (rule, family name, outcome on the
    design half)."""
    scored = scored if scored is not None else [score_faq(encoder, faq) for faq in load_half("design")]
    cosine = next(family for family in families(None) if family.name == "cosine")
    (fallback,), _ = fit(cosine, scored, mode)
    family, _ = choose_family(scored, mode, fallback)
    params, result = fit(family, scored, mode)
    rule = family.make(*params)[0]
    assert rule is not None
    return rule, family.name, result


def calibrate_faq_rules(encoder: TextEncoder) -> dict[str, dict[str, Any]]:
    """The FAQ rule of every mode, as stored in the model (``extra["faq"]["rule"]``): the rule's fields,
    its family, what it achieved on the design half and the entry vectors it was fitted on."""
    design = [score_faq(encoder, faq) for faq in load_half("design")]
    rules: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        rule, family, result = calibrate_faq_rule(encoder, mode, design)
        rates = {
            name: round(value, 4) for name, value in result.rates().items() if name in ("correct", "wrong", "refused")
        }
        rules[mode] = {
            **rule.as_dict(),
            "family": family,
            "design": rates,
            "source": f"{DATA_FOLDER} design half",
            ENTRIES_KEY: ENTRY_VECTORS,
        }
    return rules


# ===================================================================== the report
def sts_rule(encoder: TextEncoder) -> float:
    """The current rule's threshold: calibrated on the packaged pairs at target precision 0.8 (as
    ``jasper-rag calibrate-faq`` does by default)."""
    with resources.as_file(packaged_calibration_pairs()) as path:
        bank, questions, expected = sts_calibration_set(path)
    return calibrate_faq_threshold(encoder, bank, questions, expected, 0.8).threshold


def score_halves(encoder: TextEncoder) -> dict[str, list[ScoredFAQ]]:
    """Both halves scored by ``encoder``, plus the held-out FAQs merged into one store."""
    return {
        "design": [score_faq(encoder, faq) for faq in load_half("design")],
        "test": [score_faq(encoder, faq) for faq in load_half("test")],
        "test_merged": [score_faq(encoder, merged(load_half("test"), "test-merged"))],
    }


def run_faq_dev(encoder: TextEncoder, model_name: str, stored_threshold: float | None = None) -> dict[str, Any]:
    """Every rule family fitted on the design half and scored on both halves, per mode; plus a
    leave-one-FAQ-out check inside the design half and the held-out FAQs merged into one store."""
    sts = stored_threshold if stored_threshold is not None else sts_rule(encoder)
    return evaluate_rules(score_halves(encoder), sts, model_name)


def evaluate_rules(scored: dict[str, list[ScoredFAQ]], sts: float, model_name: str) -> dict[str, Any]:
    design, test, test_merged = scored["design"], scored["test"], scored["test_merged"]
    rows: list[dict[str, Any]] = []
    lofo: list[dict[str, Any]] = []
    current = Family("sts", "current: one cosine threshold from the packaged STS-format pairs", ((sts,),), None)  # type: ignore[arg-type]
    for mode in MODES:
        for family in [current, *families(sts)]:
            if family.name == "sts":
                params: tuple[float, ...] = (sts,)
                make = lambda c: (FAQRule(offset=c, relative=False), rule_answers(FAQRule(offset=c, relative=False)))  # noqa: E731
            else:
                params, _ = fit(family, design, mode)
                make = family.make
            rule, answered = make(*params)
            row = {
                "mode": mode,
                "rule": family.name,
                "description": family.description,
                "params": list(params),
                "rule_record": rule.as_dict() if rule is not None else None,
            }
            for name, part in (("design", design), ("test", test), ("test_merged", test_merged)):
                result = outcome(part, mode, answered)
                row[name] = {**result.__dict__, **result.rates(), "meets_goal": result.meets_goal()}
            rows.append(row)
            if family.name != "sts":
                pooled = _leave_one_faq_out(family, design, mode)
                rates = {**pooled.__dict__, **pooled.rates(), "meets_goal": pooled.meets_goal()}
                lofo.append({"mode": mode, "rule": family.name, **rates})
    references = {faq.name: faq.reference() for faq in [*design, *test, *test_merged]}
    return {
        "model": model_name,
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "splits": dev_splits(),
        "sts_threshold": sts,
        "chosen": {mode: choose_family(design, mode, sts)[0].name for mode in MODES},
        "references": references,
        "goal": {"max_wrong": MAX_WRONG, "min_refused": MIN_REFUSED},
        "rows": rows,
        "leave_one_faq_out": lofo,
    }


def _leave_one_faq_out(family: Family, design: Sequence[ScoredFAQ], mode: str) -> Outcome:
    """Fit on all design FAQs but one, score on that one; pooled over the rotations."""
    total: dict[str, int] = {}
    for index in range(len(design)):
        rest = [faq for i, faq in enumerate(design) if i != index]
        params, _ = fit(family, rest, mode)
        result = outcome([design[index]], mode, family.make(*params)[1])
        for name, value in result.__dict__.items():
            total[name] = total.get(name, 0) + value
    return Outcome(**total)


def _pct(value: float) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}%"


def _params(row: dict[str, Any]) -> str:
    names = {
        "sts": ("cosine",),
        "cosine": ("cosine",),
        "margin": ("margin",),
        "cosine+margin": ("cosine", "margin"),
        "faq": ("offset",),
        "faq+margin": ("offset", "margin"),
        "agreement": ("cosine",),
    }[row["rule"]]
    pairs = zip(names, row["params"], strict=True)
    return ", ".join(f"{n} {v:+.2f}" if n == "offset" else f"{n} {v:.2f}" for n, v in pairs)


def markdown(report: dict[str, Any]) -> str:
    """One model's section of ``reports/faq.md``."""
    splits = report["splits"]
    lines = [
        f"## {report['model']}",
        "",
        f"- Design half (rules chosen and calibrated here): {', '.join(splits['design'])}. "
        f"Held-out half (only reported): {', '.join(splits['test'])}.",
        "- correct / wrong = share of the paraphrased questions answered with the right / another entry; refused = "
        "share of the unrelated questions (in the FAQ's domain but not covered, and off-topic) refused. Goal: "
        f"correct >= 85%, wrong <= {_pct(MAX_WRONG)}, refused >= {_pct(MIN_REFUSED)}. ranked right = paraphrases "
        "whose first entry is the right one (what any abstention rule can answer at most).",
        f"- `sts` is the current rule: one cosine threshold ({report['sts_threshold']:.3f}) calibrated on the "
        "packaged STS-format pairs. Every other rule's parameters are fitted on the design half (most correct "
        "answers with wrong <= 5% and refused >= 95%); the test columns use those parameters unchanged.",
        "- Chosen rule per mode (bold), by the leave-one-FAQ-out table below: the family answering the most "
        "paraphrases within the goal's limits on design FAQs it was not fitted on (or closest to the limits): "
        + ", ".join(f"{mode} `{name}`" for mode, name in report["chosen"].items())
        + ". `jasper-rag calibrate-faq` makes the same choice and stores the rule with the model.",
        "",
    ]
    for mode in MODES:
        lines += [
            f"### {report['model']}: {mode} ranking",
            "",
            "| rule | parameters | design: correct | wrong | refused | held out: correct | wrong | refused | "
            "ranked right | held out merged (90 entries): correct | wrong | refused |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in report["rows"]:
            if row["mode"] != mode:
                continue
            d, t, m = row["design"], row["test"], row["test_merged"]
            name = f"**{row['rule']}**" if row["rule"] == report["chosen"][mode] else row["rule"]
            lines.append(
                f"| {name} | {_params(row)} | {_pct(d['correct'])} | {_pct(d['wrong'])} | {_pct(d['refused'])} | "
                f"{_pct(t['correct'])} | {_pct(t['wrong'])} | {_pct(t['refused'])} | {_pct(t['ranked_right'])} | "
                f"{_pct(m['correct'])} | {_pct(m['wrong'])} | {_pct(m['refused'])} |"
            )
        lines.append("")
    lines += [
        f"### {report['model']}: leave one FAQ out (design half only)",
        "",
        "Each family fitted on two design FAQs and scored on the third, pooled over the three rotations: how well "
        "a rule's calibration carries to an FAQ it was not fitted on.",
        "",
        "| mode | rule | correct | wrong | refused |",
        "|---|---|---:|---:|---:|",
    ]
    for row in report["leave_one_faq_out"]:
        rates = " | ".join(_pct(row[name]) for name in ("correct", "wrong", "refused"))
        lines.append(f"| {row['mode']} | {row['rule']} | {rates} |")
    lines += [
        "",
        f"### {report['model']}: by kind of question (held out)",
        "",
        "| mode | rule | light rewordings: correct | wrong | in-domain unrelated refused | off-topic refused |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in report["rows"]:
        t = row["test"]
        lines.append(
            f"| {row['mode']} | {row['rule']} | {_pct(t['rewordings_correct'])} | {_pct(t['rewordings_wrong'])} | "
            f"{_pct(t['in_domain_refused'])} | {_pct(t['off_topic_refused'])} |"
        )
    lines += [
        "",
        f"### {report['model']}: each FAQ's own reference cosine",
        "",
        "The median cosine of each stored question to its nearest other entry (what `faq` rules add the offset to):",
        "",
        "| FAQ | reference |",
        "|---|---:|",
    ]
    for name, value in report["references"].items():
        lines.append(f"| {name} | {'–' if value is None else f'{value:.3f}'} |")
    return "\n".join(lines) + "\n"


def markdown_all(reports: Sequence[dict[str, Any]], command: str) -> str:
    head = [
        "# FAQ abstention on the project's FAQ-style development data",
        "",
        f"Generated by `{command}` ({reports[0]['generated'] if reports else ''}); do not edit by hand. Method, "
        "data and discussion: docs/faq-calibration.md; the data: jasper_rag/data/faq-dev/.",
        "",
        "",
    ]
    return "\n".join(head) + "\n".join(markdown(report) for report in reports)


def write_report(reports: Sequence[dict[str, Any]], output_dir: Path, command: str) -> tuple[Path, Path]:
    from jasper_rag.files import atomic_write

    output_dir.mkdir(parents=True, exist_ok=True)
    md, js = output_dir / "faq.md", output_dir / "faq.json"
    text = json.dumps({"command": command, "models": list(reports)}, indent=2, default=_jsonable) + "\n"
    atomic_write(js, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    page = markdown_all(reports, command)
    atomic_write(md, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    return md, js


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value)}")


def faq_dev_command(
    models: list[str],
    output_dir: Path = Path("reports"),
    dim: int | None = None,
) -> None:
    """Measure FAQ abstention rules on the packaged FAQ-style development data for each model
    (saved folder or packaged name) -> OUTPUT_DIR/faq.md + faq.json."""
    from jasper_rag.encoder import load_encoder
    from jasper_rag.search.faq import FAQ_KEY

    reports = []
    for model in models:
        encoder = load_encoder(model)
        head = dim if dim is not None else max(encoder.dims)
        stored = encoder.config.extra.get(FAQ_KEY, {}).get("threshold")
        reports.append(run_faq_dev(encoder.at(head), Path(model).name, stored))
    command = "jasper-rag eval-faq " + " ".join(models)
    for path in write_report(reports, output_dir, command):
        print(path)


def _example_lookup(candidates: Sequence[FAQMatch], rule: FAQRule, reference: float | None) -> str:
    """The reason ``FAQMatcher`` would give (for docs and tests)."""
    threshold, source = rule.threshold(FAQProfile(len(candidates), reference, rule.quantile))
    return decide(candidates, threshold, rule.margin, source).reason
