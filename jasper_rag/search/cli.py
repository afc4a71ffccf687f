"""`jasper-rag search`, `jasper-rag faq` and `jasper-rag calibrate-faq`: thin wrappers over the searcher."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from jasper_rag.cli_support import exit_on, fail
from jasper_rag.config import get_settings
from jasper_rag.search.options import SearchOptions

ModelOption = Annotated[str | None, typer.Option(help="Model folder (default: JASPER_MODEL / models/jasper-quick).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _open_searcher(command: str, model: str | None):
    from jasper_rag.search import Searcher
    from jasper_rag.store import StoreFolderMismatchError, StoreModelMismatchError

    name = model or get_settings().model
    try:
        return Searcher.open(model=name)
    except (StoreModelMismatchError, StoreFolderMismatchError) as err:
        raise fail(command, str(err)) from None
    except (OSError, ValueError, RuntimeError) as err:
        raise fail(
            command, f"cannot load the model '{name}' ({err}); build it with `make train` or pick one with --model"
        ) from None


def _source(hit) -> str:
    page = f" p.{hit.page}" if hit.page is not None else ""
    heading = f" § {hit.heading}" if hit.heading else ""
    ocr = " (OCR)" if hit.ocr else ""
    return f"{hit.path}{page} #{hit.chunk}{heading}{ocr}"


def _snippet(text: str, width: int = 90) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _evidence(hit) -> str:
    """Why the hit is here: cosine and BM25 with their ranks, and the query words found in it."""
    parts = []
    if hit.cosine is not None:
        parts.append(f"cos {hit.cosine:.3f}" + (f" (#{hit.dense_rank})" if hit.dense_rank else ""))
    if hit.bm25 is not None:
        parts.append(f"bm25 {hit.bm25:.2f}" + (f" (#{hit.lexical_rank})" if hit.lexical_rank else ""))
    if hit.matched:
        parts.append("words: " + ", ".join(hit.matched))
    return "; ".join(parts)


DEFAULTS = SearchOptions()


def search_command(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int, typer.Option("--k", "-k", min=1, help="Number of hits.")] = DEFAULTS.k,
    mode: Annotated[
        str,
        typer.Option(help="hybrid (words + meaning, fused), dense (meaning: the model's vectors) or lexical (BM25)."),
    ] = DEFAULTS.mode,
    fusion: Annotated[
        str,
        typer.Option(
            help="Hybrid fusion: mix (weighted scores, each divided by its best), minmax (min-max scaled) "
            "or rrf (reciprocal ranks)."
        ),
    ] = DEFAULTS.fusion,
    dense_weight: Annotated[
        float, typer.Option(help="mix, minmax: weight of the dense side, 0..1.")
    ] = DEFAULTS.dense_weight,
    rrf_k: Annotated[int, typer.Option(help="rrf: the rank constant.")] = DEFAULTS.rrf_k,
    dim: Annotated[int | None, typer.Option(help="Head dimension to search (default: the full head).")] = None,
    kind: Annotated[list[str] | None, typer.Option(help="Only these kinds: chunk, image, faq (repeatable).")] = None,
    file_type: Annotated[
        list[str] | None, typer.Option("--type", help="Only files of these types, e.g. pdf, md (repeatable).")
    ] = None,
    folder: Annotated[str | None, typer.Option(help="Only files under this folder of the ingested tree.")] = None,
    funnel: Annotated[bool, typer.Option(help="Shortlist with the smallest head, re-score with --dim's.")] = False,
    shortlist: Annotated[
        int, typer.Option(min=1, help="Candidates per side (dense, lexical) that hybrid and funnel re-score.")
    ] = DEFAULTS.shortlist,
    funnel_dim: Annotated[int | None, typer.Option(help="Head that shortlists (default: the smallest).")] = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Search the ingested documents, images and FAQ entries; prints score, evidence and source of each hit."""
    from jasper_rag.search import EmptyStoreError

    searcher = _open_searcher("search", model)
    with exit_on("search", EmptyStoreError, ValueError):
        hits = searcher.search(
            query,
            k=k,
            mode=mode,
            fusion=fusion,
            dense_weight=dense_weight,
            rrf_k=rrf_k,
            dim=dim,
            kinds=kind or None,
            file_types=file_type or None,
            path_prefix=folder,
            funnel=funnel,
            shortlist=shortlist,
            funnel_dim=funnel_dim,
        )
    if as_json:
        typer.echo(json.dumps([hit.to_dict() for hit in hits], indent=2))
        return
    if not hits:
        typer.echo("no hits")
        return
    table = Table(title=f"{len(hits)} hits for {query!r} ({hits[0].mode})")
    for column in ("#", "score", "evidence", "kind", "source", "text"):
        table.add_column(column, overflow="fold")
    for rank, hit in enumerate(hits, start=1):
        table.add_row(str(rank), f"{hit.score:.3f}", _evidence(hit), hit.kind, _source(hit), _snippet(hit.text))
    Console(markup=False, highlight=False).print(table)


def faq_command(
    question: Annotated[str, typer.Argument(help="The question to match against the FAQ entries.")],
    threshold: Annotated[
        float | None, typer.Option(help="Override the model's FAQ rule with a plain cosine threshold.")
    ] = None,
    mode: Annotated[
        str,
        typer.Option(
            help="Rank the entries by 'dense' cosine or 'hybrid' (cosine + BM25; see docs/faq-calibration.md)."
        ),
    ] = "dense",
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Answer from the FAQ when the model's FAQ rule accepts the best entry; otherwise say why and show the nearest."""
    from jasper_rag.search import EmptyStoreError, FAQMatcher
    from jasper_rag.search.faq import UncalibratedModelError

    searcher = _open_searcher("faq", model)
    with exit_on("faq", EmptyStoreError, UncalibratedModelError, ValueError, TypeError):
        lookup = FAQMatcher(searcher, threshold=threshold, mode=mode).lookup(question)
    if as_json:
        typer.echo(json.dumps(lookup.to_dict(), indent=2))
        return
    if lookup.match is not None:
        typer.echo(f"Q: {lookup.match.question}\nA: {lookup.match.answer}\n({lookup.reason}; {lookup.match.path})")
        return
    typer.echo(f"no confident match ({lookup.reason}); nearest:")
    for candidate in lookup.candidates:
        typer.echo(f"  {candidate.score:.3f}  {candidate.question}")


def calibrate_faq_command(
    model: Annotated[str, typer.Argument(help="Saved model folder to calibrate (the threshold is stored in it).")],
    pairs: Annotated[
        Path | None,
        typer.Option(help="STS-format file of labelled pairs, e.g. STSB dev (default: packaged faq-calibration.tsv)."),
    ] = None,
    target_precision: Annotated[
        float, typer.Option(min=0.01, max=1.0, help="Precision the threshold aims at (see docs/faq-calibration.md).")
    ] = 0.8,
    dim: Annotated[int | None, typer.Option(help="Head to calibrate (default: the full head).")] = None,
    if_missing: Annotated[
        bool, typer.Option(help="Do nothing when the model already stores a current FAQ rule (for make train / demo).")
    ] = False,
) -> None:
    """Calibrate the FAQ abstention rule of a model and store it with the model.

    The rule (this FAQ's threshold and a margin over the next entry, for dense and hybrid ranking) is
    chosen and fitted on the design half of the packaged FAQ-style development FAQs, on entry vectors
    of question and answer together, as stores hold them; FAQs too small to have their own threshold
    get the best fixed cosine of the design half. The plain cosine threshold of the labelled pairs
    (default: the packaged pairs) is stored too, for older readers. See docs/faq-calibration.md.
    """
    from contextlib import nullcontext
    from importlib import resources

    from jasper_rag.encoder import CONFIG_FILE, load_encoder
    from jasper_rag.eval.data import EvalDataError
    from jasper_rag.eval.faq_dev import calibrate_faq_rules
    from jasper_rag.search.faq import (
        FAQ_KEY,
        PACKAGED_PAIRS,
        calibrate_faq_threshold,
        is_current_rule,
        packaged_calibration_pairs,
        store_calibration,
        sts_calibration_set,
    )

    folder = Path(model)
    if not (folder / CONFIG_FILE).is_file():
        raise fail("calibrate-faq", f"{folder}: not a saved jasper_rag model folder (no {CONFIG_FILE})")
    stored = json.loads((folder / CONFIG_FILE).read_text()).get("extra", {}).get(FAQ_KEY, {})
    if if_missing and is_current_rule(stored):
        typer.echo(f"{folder} already stores an FAQ rule: nothing to do")
        return
    opened = nullcontext(pairs) if pairs is not None else resources.as_file(packaged_calibration_pairs())
    name = pairs.name if pairs is not None else f"{PACKAGED_PAIRS} (packaged)"
    with exit_on("calibrate-faq", EvalDataError), opened as source:
        bank, questions, expected = sts_calibration_set(source)
    encoder = load_encoder(folder)
    head_dim = dim if dim is not None else max(encoder.dims)
    calibration = calibrate_faq_threshold(
        encoder.at(head_dim), bank, questions, expected, target_precision, source=f"{name}, dim {head_dim}"
    )
    rules = calibrate_faq_rules(encoder.at(head_dim))
    store_calibration(encoder, calibration, folder, rules)
    typer.echo(json.dumps(encoder.config.extra[FAQ_KEY], indent=2))
