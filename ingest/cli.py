"""Command-line front of ingestion and the store check: ``python -m ingest`` and ``jasper-rag ingest|doctor``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from jasper_rag.config import Settings, get_settings

log = logging.getLogger(__name__)

EXIT_ERROR = 1

DB_OPTION = typer.Option(None, "--db", help="SQLAlchemy URL of the metadata database (default: sqlite in indexes/).")
INDEX_DIR_OPTION = typer.Option(None, "--index-dir", help="Folder of the FAISS index files (default: indexes/).")


def _quiet_libraries() -> None:
    """Which CPU build FAISS picked is not news to users."""
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_ERROR)


def _load_model(name: str):
    from jasper_rag.encoder import load_encoder

    try:
        return load_encoder(name)
    except Exception as err:
        raise _fail(
            f"cannot load the model '{name}' ({type(err).__name__}: {err}). Train it with `make train`, "
            "or pick another with --model / JASPER_MODEL (e.g. JASPER_MODEL=minilm-l6)"
        ) from err


def _open_store(settings: Settings, db: str | None, index_dir: Path | None):
    """The store, or a clear error (unreachable server, bad URL, unwritable folder) instead of a traceback."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from jasper_rag.store import Store

    url = db or settings.database_url
    try:
        return Store.open(settings, db_url=db, index_dir=index_dir)
    except (SQLAlchemyError, OSError) as err:
        try:
            shown = make_url(url).render_as_string(hide_password=True)
        except SQLAlchemyError:
            shown = "the given --db URL"
        raise _fail(f"cannot open the store at {shown}: {type(err).__name__}: {err}") from err


def ingest_command(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to ingest (folders are walked recursively).")],
    rebuild: bool = typer.Option(False, "--rebuild", help="Delete every document and index first, then ingest."),
    db: str = DB_OPTION,
    index_dir: Path = INDEX_DIR_OPTION,
    model: str = typer.Option(
        None, "--model", help="Encoder: saved model folder or packaged name (default: JASPER_MODEL)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Ingest PDFs, text, Markdown, reST, HTML, images and FAQ files (.csv/.jsonl: question, answer).

    New and changed files are embedded with every head of the model (one FAISS index per head).

    Unchanged files are skipped; files gone from an ingested folder are removed with their vectors.

    Exit status: 0 when every file went in, 3 when some failed (listed with reasons), 1 when it could not start.
    """
    _quiet_libraries()
    from sqlalchemy.exc import SQLAlchemyError

    from ingest.pipeline import ingest_paths
    from jasper_rag.store import IndexTrainingError, StoreModelMismatchError

    settings = get_settings()
    encoder = _load_model(model or settings.model)
    store = _open_store(settings, db, index_dir)
    try:
        summary = ingest_paths(paths, encoder, store, settings, rebuild=rebuild, progress=not quiet)
    except (StoreModelMismatchError, IndexTrainingError) as err:
        raise _fail(str(err)) from err
    except OSError as err:  # e.g. a full disk: the last commit is intact, a rerun resumes
        raise _fail(f"cannot write the store in {store.index_dir}: {err}") from err
    except SQLAlchemyError as err:  # e.g. the database server went away: the last commit is intact
        raise _fail(f"database error, the last commit is intact and a rerun resumes: {err}") from err
    finally:
        store.close()
    typer.echo(summary.render())
    raise typer.Exit(summary.exit_code)


def doctor_command(
    repair: bool = typer.Option(False, "--repair", help="Fix the drift found (and delete leftover files)."),
    db: str = DB_OPTION,
    index_dir: Path = INDEX_DIR_OPTION,
) -> None:
    """Check that the SQL metadata and every FAISS index agree; exit 1 on drift (unless repaired)."""
    _quiet_libraries()
    from jasper_rag.store.doctor import check
    from jasper_rag.store.doctor import repair as repair_store

    store = _open_store(get_settings(), db, index_dir)
    try:
        report = check(store)
        if repair and (not report.consistent or report.garbage):
            typer.echo(report.render())
            typer.echo("repairing...")
            report = repair_store(store)
    finally:
        store.close()
    typer.echo(report.render())
    raise typer.Exit(0 if report.consistent else EXIT_ERROR)
