"""``jasper-rag eval`` / ``make eval``: load tasks and encoders, score, write the three reports."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jasper_rag.config import Settings, get_settings
from jasper_rag.encoder import CONFIG_FILE, load_encoder
from jasper_rag.eval.backends import BackendSection, evaluate_backends
from jasper_rag.eval.candidates import CandidateBuilder
from jasper_rag.eval.report import write_json, write_markdown, write_plot
from jasper_rag.eval.retriever import RetrieverRow, evaluate_retrievers
from jasper_rag.eval.runner import ResultRow, evaluate
from jasper_rag.eval.speed import SpeedLedger
from jasper_rag.eval.tasks import load_task


@dataclass
class EvalOutcome:
    """What a run produced: the rows, notes (e.g. a missing model), the files written, the retriever rows and
    the in-house model's backend section."""

    rows: list[ResultRow]
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    retriever: list[RetrieverRow] = field(default_factory=list)
    backends: BackendSection | None = None


def run_eval(
    models: Sequence[str],
    tasks: Sequence[str],
    heads: Sequence[str] | None = None,
    eval_dir: Path | None = None,
    output_dir: Path | None = None,
    baseline_dims: Sequence[int] | None = None,
    settings: Settings | None = None,
    cached_only: bool = False,
    command: str = "make eval (jasper-rag eval)",
) -> EvalOutcome:
    """Evaluate ``models`` (groups or model paths) on ``tasks`` and write eval.json / eval.md / eval.png.

    Retrieval tasks also get the retriever section (dense, lexical, hybrid and funnel modes, see
    ``retriever.py``); the ``inhouse`` group also the backend section (every inference backend per head,
    which qualifies and whether the default is the fastest that does, see ``backends.py``).

    Options left None come from the settings. Only the reports are written (never the README).
    ``cached_only`` scores only what the vector cache already holds (skipped pairs become notes).
    """
    settings = settings or get_settings()
    eval_dir = eval_dir or settings.eval_dir
    output_dir = output_dir or settings.reports_dir
    loaded = [load_task(spec, eval_dir, settings.eval_faq_target_precision) for spec in tasks]
    builder = CandidateBuilder(settings, heads)
    candidates = builder.build(models, baseline_dims or settings.eval_baseline_dims)
    if not candidates:
        raise ValueError("nothing to evaluate: " + ("; ".join(builder.notes) or "no models selected"))
    ledger = SpeedLedger(settings.cache_dir / "eval_speed.json")
    rows, skipped = evaluate(
        candidates, loaded, ledger, settings.batch_size, settings.eval_pca_sample, cached_only=cached_only
    )
    notes = builder.notes + [f"skipped {pair}" for pair in skipped]
    if not rows:
        raise ValueError("nothing was scored: " + "; ".join(notes))

    retriever, retriever_notes = evaluate_retrievers(
        candidates, loaded, settings.batch_size, settings.eval_pca_sample, cached_only=cached_only
    )
    backends = None
    model = Path(settings.model)
    if "inhouse" in models and (model / CONFIG_FILE).is_file():
        backends = evaluate_backends(load_encoder(model), model.name, loaded, settings, heads, cached_only)
        notes += [note for note in [backends.default_check()] if note]
    outcome = EvalOutcome(rows, notes, retriever=retriever, backends=backends)
    json_path, md_path, png_path = (output_dir / f"eval.{suffix}" for suffix in ("json", "md", "png"))
    write_json(rows, json_path, notes, retriever, retriever_notes, backends)
    write_plot(rows, png_path, {task.name: task.main_metric for task in loaded})
    write_markdown(rows, md_path, notes, png_path.name, retriever, retriever_notes, command, backends)
    outcome.files += [json_path, md_path, png_path]
    return outcome
