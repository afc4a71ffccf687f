"""Reports from result rows: ``eval.json`` (rows), ``eval.md`` (table) and ``eval.png`` (plots).

``markdown_table`` renders the results table of ``eval.md``. Nothing here writes the README.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from jasper_rag.eval.retriever import DEFAULTS, HALF_B, LEXICAL_MODEL, TUNE_GRID, TUNED_MODE, RetrieverRow
from jasper_rag.eval.runner import ResultRow
from jasper_rag.files import atomic_write

if TYPE_CHECKING:
    from jasper_rag.eval.backends import BackendSection

log = logging.getLogger(__name__)

METRIC_LABELS = {
    "ndcg_at_10": "nDCG@10",
    "recall_at_100": "R@100",
    "mrr_at_10": "MRR@10",
    "spearman": "Spearman",
    "pearson": "Pearson",
    "top1_accuracy": "top-1",
    "accuracy_at_threshold": "acc@thr",
    "coverage_at_threshold": "cov@thr",
    "threshold": "thr",
}
DEFINITIONS = (
    'Scores x100, scored as MTEB does (cosine similarity; retrieval documents are `title + " " + text`; '
    "nDCG@10, Recall@100 and MRR@10 over every judged query; STS: Spearman and Pearson of cosine against "
    "the gold score). FAQ-STSB: STS Benchmark test pairs with gold >= 4 as (question, paraphrase); top-1 = "
    "share of questions whose nearest candidate (among all paraphrases) is theirs; thr = the lowest top-1 "
    "cosine keeping precision >= the target on a seeded half of the questions; acc@thr / cov@thr = "
    "precision / share answered at that threshold on the other half. <task> s = estimated CPU seconds "
    "(one thread) to embed all of the task's texts, timed on a 64-text sample (ensemble = both "
    "teachers; baselines = their base model). – = not scored."
)


def _models(rows: Sequence[ResultRow]) -> list[tuple[str, int]]:
    return list(dict.fromkeys((row.model, row.head_dim) for row in rows))


def _cell(metric: str, score: float | None) -> str:
    if score is None:
        return "–"
    return f"{score:.3f}" if metric == "threshold" else f"{score:.2f}"


def markdown_table(rows: Sequence[ResultRow]) -> str:
    """One line per (model, dim); per task, one column per metric then its encode seconds ("s")."""
    tasks = list(dict.fromkeys(row.task for row in rows))
    metrics = {task: list(dict.fromkeys(row.metric for row in rows if row.task == task)) for task in tasks}
    cells = {(row.model, row.head_dim, row.task, row.metric): row for row in rows}
    header, aligns = ["model", "dim"], ["---", "---:"]
    for task in tasks:
        header += [f"{task} {METRIC_LABELS.get(metric, metric)}" for metric in metrics[task]] + [f"{task} s"]
        aligns += ["---:"] * (len(metrics[task]) + 1)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(aligns) + "|"]
    for model, dim in _models(rows):
        text = [model, str(dim)]
        for task in tasks:
            found = [cells.get((model, dim, task, metric)) for metric in metrics[task]]
            text += [
                _cell(metric, row.score if row else None) for metric, row in zip(metrics[task], found, strict=True)
            ]
            seconds = next((row.encode_seconds for row in found if row is not None), None)
            text.append("–" if seconds is None else f"{seconds:.0f}")
        lines.append("| " + " | ".join(text) + " |")
    return "\n".join(lines)


RETRIEVER_DEFINITIONS = (
    "What the searcher finds with its default settings (`SearchOptions()`: shortlist {shortlist}, equal mix "
    "w={weight:g}, RRF k={rrf_k}; nothing tuned on the test queries), top 100 per query, nDCG@10 and Recall@100 x100 "
    "over every judged query. dense = the top-{shortlist} by cosine with the encoder; lexical = BM25 (tantivy, "
    "English analysis, the store's lexical index; independent of the model, one row per task); hybrid-mix / "
    "hybrid-minmax / hybrid-rrf = the union of the dense and lexical top-{shortlist}, every candidate scored exactly "
    "by the encoder, "
    "the lexical score known for the lexical shortlist only, fused by `fuse` (mix: w x dense / best dense + (1 - w) x "
    "BM25 / best BM25, cosines below 0 counted as 0; minmax: the same with each side min-max scaled over the "
    "candidates; rrf: sum of 1 / (k + rank)) and ranked (`jasper_rag.search.hybrid.hybrid_rank`); funnel a->b = "
    "the dense shortlist from the a-d head, every candidate scored by the b-d head (the searcher's funnel). "
    "dense cost = millions of multiply-adds per query for the dense side (corpus scan with the shortlisting head "
    "+ exact re-scoring of candidates that scan did not score); the query's own encoding is not counted."
)
TUNED_DEFINITION = (
    "Settings chosen on queries: the judged queries are split in two seeded halves (seed 0); dense_weight is picked "
    "from {grid} by nDCG@10 on half A, and the default equal mix, the tuned mix and the min-max mix are scored on "
    "half B only (mix's scaling, each side divided by its best score, was chosen over min-max scaling on half A)."
)


def _line(*cells: object) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def retriever_tables(rows: Sequence[RetrieverRow]) -> list[str]:
    """Per retrieval task: every (candidate, mode) on all queries, then the half-B comparison."""
    lines: list[str] = []
    for task in dict.fromkeys(row.task for row in rows):
        everything = [row for row in rows if row.task == task and row.queries != HALF_B]
        halves = [row for row in rows if row.task == task and row.queries == HALF_B]
        lines += [f"### {task}", ""]
        lines += [
            "| model | dim | mode | nDCG@10 | R@100 | dense cost (M/query) | settings |",
            "|---|---:|---|---:|---:|---:|---|",
        ]
        for row in everything:
            dim = "–" if row.model == LEXICAL_MODEL else str(row.head_dim)
            cost = "–" if row.dense_cost is None else f"{row.dense_cost:.2f}"
            lines.append(
                _line(row.model, dim, row.mode, f"{row.ndcg_at_10:.2f}", f"{row.recall_at_100:.2f}", cost, row.settings)
            )
        if halves:
            lines += ["", f"{task}, {HALF_B} only (the min-max mix, the equal mix and `{TUNED_MODE}`):", ""]
            lines += ["| model | dim | mode | nDCG@10 | R@100 | settings |", "|---|---:|---|---:|---:|---|"]
            lines += [
                _line(
                    row.model, row.head_dim, row.mode, f"{row.ndcg_at_10:.2f}", f"{row.recall_at_100:.2f}", row.settings
                )
                for row in halves
            ]
        lines.append("")
    return lines


def retriever_section(rows: Sequence[RetrieverRow], notes: Sequence[str] = ()) -> list[str]:
    """The "Retriever" section of eval.md (empty without retrieval rows)."""
    if not rows:
        return []
    text = RETRIEVER_DEFINITIONS.format(
        shortlist=DEFAULTS.shortlist, weight=DEFAULTS.dense_weight, rrf_k=DEFAULTS.rrf_k
    )
    tuned = TUNED_DEFINITION.format(grid=", ".join(f"{w:g}" for w in TUNE_GRID))
    parts = ["## Retriever", "", text + " " + tuned, ""]
    parts += [f"- Note: {note}" for note in notes] + ([""] if notes else [])
    return parts + retriever_tables(rows)


BACKEND_DEFINITION = (
    "The in-house model {model} on each inference backend (`JASPER_BACKEND`): every head's main score on each "
    "retrieval and STS task, and its difference (Δ) to eager torch. A backend qualifies when no score is more than "
    "{tolerance:g} below eager's; texts/s = one all-heads pass over a seeded sample of the tasks' texts (wall clock, "
    "best of 3, this machine's threads, other jobs included)."
)


def backend_section(section: BackendSection) -> list[str]:
    """Scores per backend x head with their Δ to eager, then speed and verdict per backend."""
    tasks = list(dict.fromkeys((row.task, row.metric) for row in section.rows))
    cells = {(row.backend, row.head, row.task): row for row in section.rows}
    header = ["backend", "head", "dim"]
    for task, metric in tasks:
        header += [f"{task} {METRIC_LABELS.get(metric, metric)}", "Δ"]
    lines = [_line(*header), "|" + "|".join(["---", "---", "---:"] + ["---:"] * 2 * len(tasks)) + "|"]
    for backend, head, dim in dict.fromkeys((row.backend, row.head, row.head_dim) for row in section.rows):
        text = [backend, head, dim]
        for task, _ in tasks:
            row = cells.get((backend, head, task))
            delta = "" if row is None or row.delta is None else f"{row.delta:+.2f}"
            text += ["–", "–"] if row is None else [f"{row.score:.2f}", delta]
        lines.append(_line(*text))
    lines += ["", _line("backend", "texts/s", "worst Δ", "qualifies"), "|---|---:|---:|---|"]
    for backend in section.backends:
        worst = section.worst_delta(backend)
        speed = section.speed.get(backend)
        lines.append(
            _line(
                backend,
                "–" if speed is None else f"{speed:.1f}",
                "" if worst is None else f"{worst:+.2f}",
                "yes" if section.qualifies(backend) else "no",
            )
        )
    warning = section.default_check()
    if warning:
        verdict = f"**Warning: {warning}.**"
    else:
        verdict = f"Fastest qualifying backend: **{section.fastest}**, the default (`Settings.backend`)."
    notes = [note for note in section.notes if note != warning]
    parts = ["## Backends", "", BACKEND_DEFINITION.format(model=section.model, tolerance=section.tolerance), ""]
    parts += [f"- Note: {note}" for note in notes] + ([""] if notes else [])
    parts += [*lines, "", verdict, ""]
    return parts


def write_json(
    rows: Sequence[ResultRow],
    path: Path,
    notes: Sequence[str] = (),
    retriever: Sequence[RetrieverRow] = (),
    retriever_notes: Sequence[str] = (),
    backends: BackendSection | None = None,
) -> None:
    payload = {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "notes": list(notes),
        "rows": [asdict(row) for row in rows],
    }
    if retriever:
        payload["retriever_notes"] = list(retriever_notes)
        payload["retriever"] = [asdict(row) for row in retriever]
    if backends is not None:
        payload["backends"] = backends.to_json()
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(payload, indent=1) + "\n"))


def write_markdown(
    rows: Sequence[ResultRow],
    path: Path,
    notes: Sequence[str] = (),
    plot_name: str = "",
    retriever: Sequence[RetrieverRow] = (),
    retriever_notes: Sequence[str] = (),
    command: str = "make eval (jasper-rag eval)",
    backends: BackendSection | None = None,
) -> None:
    parts = ["# Evaluation", "", f"Generated by `{command}`. " + DEFINITIONS, ""]
    parts += [f"- Note: {note}" for note in notes] + ([""] if notes else [])
    parts += [markdown_table(rows), ""]
    if plot_name:
        parts += [f"![score against dimension and encoding time]({plot_name})", ""]
    if backends is not None:
        parts += backend_section(backends)
    parts += retriever_section(retriever, retriever_notes)
    atomic_write(path, lambda tmp: tmp.write_text("\n".join(parts)))


def write_plot(rows: Sequence[ResultRow], path: Path, main_metrics: dict[str, str]) -> None:
    """Per task (main metric): score against dimension per model, and score against encode seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    tasks = list(main_metrics)
    fig, axes = plt.subplots(2, len(tasks), figsize=(5.5 * len(tasks), 9), squeeze=False)
    models = list(dict.fromkeys(row.model for row in rows))
    colours = {model: plt.get_cmap("tab10")(i % 10) for i, model in enumerate(models)}
    for column, task in enumerate(tasks):
        metric = main_metrics[task]
        picked = [row for row in rows if row.task == task and row.metric == metric and row.score is not None]
        by_dim, by_speed = axes[0][column], axes[1][column]
        for model in models:
            points = sorted((row.head_dim, row.score, row.encode_seconds) for row in picked if row.model == model)
            if not points:
                continue
            dims, scores, seconds = zip(*points, strict=True)
            by_dim.plot(dims, scores, marker="o", color=colours[model], label=model)
            timed = [(second, score) for second, score in zip(seconds, scores, strict=True) if second > 0]
            if timed:
                by_speed.scatter(*zip(*timed, strict=True), color=colours[model], label=model)
        label = f"{task} {METRIC_LABELS.get(metric, metric)}"
        tick_dims = sorted({row.head_dim for row in picked})
        by_dim.set_xscale("log", base=2)
        by_dim.set_xticks(tick_dims, [str(dim) for dim in tick_dims])
        by_dim.minorticks_off()
        by_dim.set(xlabel="dimension", ylabel=label, title=f"{label} vs dimension")
        timings = [row.encode_seconds for row in picked if row.encode_seconds > 0]
        by_speed.set(xscale="log", xlabel="encode CPU seconds, one thread (log)", ylabel=label)
        if timings:
            by_speed.set_xlim(min(timings) / 2, max(timings) * 2)
        by_speed.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        by_speed.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        by_speed.xaxis.set_minor_formatter(ticker.NullFormatter())
        by_speed.set_title(f"{label} vs encoding time")
        for axis in (by_dim, by_speed):
            axis.grid(alpha=0.3)
    found = {}
    for axis in axes.flat:
        handles, labels = axis.get_legend_handles_labels()
        found.update(zip(labels, handles, strict=True))
    labels = [model for model in models if model in found]
    fig.legend(
        [found[label] for label in labels], labels, loc="lower center", ncol=min(4, max(len(labels), 1)), fontsize=9
    )
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)
