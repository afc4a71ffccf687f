"""`jasper-rag ingest` and `jasper-rag doctor`: thin wrappers over the ingestion pipeline and the store check."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jasper_rag.cli_support import EXIT_FAILED, fail
from jasper_rag.config import Settings, get_settings

DbOption = Annotated[
    str | None, typer.Option("--db", help="SQLAlchemy URL of the metadata database (default: sqlite in indexes/).")
]
IndexDirOption = Annotated[
    Path | None, typer.Option("--index-dir", help="Folder of the FAISS index files (default: indexes/).")
]


def load_model(command: str, name: str):
    """The encoder ``name``, or a one-line error that says how to get one."""
    from jasper_rag.encoder import load_encoder

    try:
        return load_encoder(name)
    except Exception as err:
        raise fail(
            command,
            f"cannot load the model '{name}' ({type(err).__name__}: {err}). Train it with `make train`, "
            "or pick another with --model / JASPER_MODEL (e.g. JASPER_MODEL=minilm-l6)",
        ) from None


def _open_store(command: str, settings: Settings, db: str | None, index_dir: Path | None):
    """The store, or a clear error (unreachable server, bad URL, unwritable folder) instead of a traceback."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from jasper_rag.store import Store, StoreFolderMismatchError

    url = db or settings.database_url
    try:
        return Store.open(settings, db_url=db, index_dir=index_dir)
    except StoreFolderMismatchError as err:
        raise fail(command, str(err)) from None
    except (SQLAlchemyError, OSError) as err:
        try:
            shown = make_url(url).render_as_string(hide_password=True)
        except SQLAlchemyError:
            shown = "the given --db URL"
        raise fail(command, f"cannot open the store at {shown}: {type(err).__name__}: {err}") from None


def ingest_command(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to ingest (folders are walked recursively).")],
    rebuild: Annotated[bool, typer.Option(help="Delete every document and index first, then ingest.")] = False,
    db: DbOption = None,
    index_dir: IndexDirOption = None,
    model: Annotated[
        str | None, typer.Option(help="Encoder: saved model folder or packaged name (default: JASPER_MODEL).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Ingest PDFs, text, Markdown, reST, HTML, images and FAQ files (.csv/.jsonl: question, answer).

    New and changed files are embedded with every head of the model (one FAISS index per head).

    Unchanged files are skipped; files gone from an ingested folder are removed with their vectors.

    Exit status: 0 when every file went in, 3 when some failed (listed with reasons), 1 when it could not start.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from jasper_rag.ingest.pipeline import ingest_paths
    from jasper_rag.store import IndexTrainingError, StoreModelMismatchError

    settings = get_settings()
    encoder = load_model("ingest", model or settings.model)
    store = _open_store("ingest", settings, db, index_dir)
    try:
        summary = ingest_paths(paths, encoder, store, settings, rebuild=rebuild, progress=not quiet)
    except (StoreModelMismatchError, IndexTrainingError) as err:
        raise fail("ingest", str(err)) from None
    except OSError as err:  # e.g. a full disk: the last commit is intact, a rerun resumes
        raise fail("ingest", f"cannot write the store in {store.index_dir}: {err}") from None
    except SQLAlchemyError as err:  # e.g. the database server went away: the last commit is intact
        raise fail("ingest", f"database error, the last commit is intact and a rerun resumes: {err}") from None
    finally:
        store.close()
    typer.echo(summary.render())
    raise typer.Exit(summary.exit_code)


def doctor_command(
    repair: Annotated[bool, typer.Option(help="Fix the drift found (and delete leftover files).")] = False,
    db: DbOption = None,
    index_dir: IndexDirOption = None,
) -> None:
    """Check that the SQL metadata and every FAISS index agree; exit 1 on drift (unless repaired)."""
    from jasper_rag.store.doctor import check
    from jasper_rag.store.doctor import repair as repair_store

    store = _open_store("doctor", get_settings(), db, index_dir)
    try:
        report = check(store)
        if repair and (not report.consistent or report.garbage):
            typer.echo(report.render())
            typer.echo("repairing...")
            report = repair_store(store)
    finally:
        store.close()
    typer.echo(report.render())
    raise typer.Exit(0 if report.consistent else EXIT_FAILED)
