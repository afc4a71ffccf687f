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
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Keep the one FOLDER given in sync: ingest it, then follow its added, changed and removed files "
            "until Ctrl-C.",
        ),
    ] = False,
    debounce: Annotated[
        float, typer.Option(min=0.05, help="--watch: seconds without changes before a burst of them is synced.")
    ] = 2.0,
    engine: Annotated[
        str,
        typer.Option(
            help="local: this process parses and embeds; ray: Ray Data workers do (RAY_ADDRESS: a cluster, else a "
            "local Ray; needs `pip install 'jasper-rag[ray]'`). The commits are the same."
        ),
    ] = "local",
    workers: Annotated[
        int, typer.Option(min=1, help="--engine ray: workers embedding in parallel (one CPU and one model each).")
    ] = 1,
) -> None:
    """Ingest PDFs (scanned pages read by OCR), Word (.docx), PowerPoint (.pptx), Excel (.xlsx), OpenDocument
    (.odt), EPUB, e-mail (.eml/.mbox), Markdown, reST, HTML, text, images (their text read by OCR) and FAQ
    files (.jsonl, and .csv whose header names question and answer; any other .csv is read as a table).

    New and changed files are embedded with every head of the model (one FAISS index per head).

    Unchanged files are skipped; files gone from an ingested folder are removed with their vectors (a named
    path that does not exist keeps its documents: `jasper-rag remove` removes on purpose).

    With --watch FOLDER the command stays on and syncs the folder after each burst of changes, logging what
    happened to each file; every sync commits like an ingest, so stopping it at any moment is safe.

    With --engine ray the files are parsed and embedded by --workers Ray Data workers (docs/scale.md); the
    results, the commits and the exit status are the local engine's.

    Exit status: 0 when every file went in, 3 when some failed (listed with reasons), 1 when it could not start.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from jasper_rag.ingest.pipeline import ingest_paths
    from jasper_rag.ingest.ray_engine import RayIngestError, ingest_paths_ray
    from jasper_rag.store import IndexTrainingError, StoreModelMismatchError

    settings = get_settings()
    if watch and (len(paths) != 1 or not paths[0].is_dir() or rebuild):
        raise fail("ingest", "--watch takes exactly one existing folder (and no --rebuild)")
    _check_engine(engine, workers, watch)
    encoder = load_model("ingest", model or settings.model)
    store = _open_store("ingest", settings, db, index_dir)
    if watch:
        _watch(paths[0], store, encoder, settings, debounce)
    try:
        if engine == "ray":
            summary = ingest_paths_ray(
                paths, encoder, model or settings.model, store, settings, workers, rebuild=rebuild, progress=not quiet
            )
        else:
            summary = ingest_paths(paths, encoder, store, settings, rebuild=rebuild, progress=not quiet)
    except (StoreModelMismatchError, IndexTrainingError, RayIngestError) as err:
        raise fail("ingest", str(err)) from None
    except OSError as err:  # e.g. a full disk: the last commit is intact, a rerun resumes
        raise fail("ingest", f"cannot write the store in {store.index_dir}: {err}") from None
    except SQLAlchemyError as err:  # e.g. the database server went away: the last commit is intact
        raise fail("ingest", f"database error, the last commit is intact and a rerun resumes: {err}") from None
    finally:
        store.close()
    typer.echo(summary.render())
    raise typer.Exit(summary.exit_code)


def _check_engine(engine: str, workers: int, watch: bool) -> None:
    """One line, before any work, when the engine options do not go together or Ray is not installed."""
    from jasper_rag.ingest.ray_engine import RayUnavailableError, import_ray

    if engine not in ("local", "ray"):
        raise fail("ingest", f"--engine must be local or ray, got '{engine}'")
    if engine == "local" and workers != 1:
        raise fail("ingest", "--workers sets the Ray workers: it needs --engine ray")
    if engine == "ray" and watch:
        raise fail("ingest", "--watch runs on the local engine: drop --engine ray")
    if engine == "ray":
        try:
            import_ray()
        except RayUnavailableError as err:
            raise fail("ingest", str(err)) from None


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


def _watch(folder: Path, store, encoder, settings: Settings, debounce: float) -> None:
    """Run the watcher until Ctrl-C (or SIGTERM, as a service manager stops it), then print its summary
    (exit 3 when some files failed)."""
    import signal
    import threading

    from jasper_rag.cli_support import EXIT_PARTIAL
    from jasper_rag.ingest.watch import Watcher
    from jasper_rag.store import IndexTrainingError, StoreModelMismatchError

    watcher = Watcher(folder, store, encoder, settings, debounce)
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)  # stops like Ctrl-C: summary printed
    try:
        watcher.run(threading.Event())
    except KeyboardInterrupt:
        typer.echo("stopped: every sync committed so far is in the store; the next run catches up", err=True)
    except (StoreModelMismatchError, IndexTrainingError) as err:
        raise fail("ingest", str(err)) from None
    except OSError as err:  # e.g. the inotify watch limit (fs.inotify.max_user_watches)
        raise fail("ingest", f"cannot watch {folder}: {err}") from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        store.close()
    typer.echo(watcher.summary.render())
    raise typer.Exit(EXIT_PARTIAL if watcher.summary.outcomes["failed"] else 0)


def remove_command(
    paths: Annotated[
        list[Path],
        typer.Argument(help="Files or folders whose documents to remove (a folder: every document under it)."),
    ],
    db: DbOption = None,
    index_dir: IndexDirOption = None,
) -> None:
    """Remove documents from the store: their rows, the vectors of every head and their lexical entries, in one commit.

    The files themselves are left alone: ingesting their folder again (or a running `ingest --watch`) brings
    them back. `remove .` removes every document under the current folder, without asking.

    Exit status: 0 when every path named stored documents, 3 when some named none (listed; the others are still
    removed), 1 when it could not run.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from jasper_rag.cli_support import EXIT_PARTIAL
    from jasper_rag.ingest.lifecycle import remove_paths

    store = _open_store("remove", get_settings(), db, index_dir)
    try:
        removal = remove_paths(store, list(paths))
    except (OSError, SQLAlchemyError) as err:  # nothing was removed: the commit is all or nothing
        raise fail("remove", f"cannot write the store in {store.index_dir}, nothing removed: {err}") from None
    finally:
        store.close()
    typer.echo(removal.render())
    raise typer.Exit(EXIT_PARTIAL if removal.unknown else 0)


def list_command(
    folder: Annotated[
        Path | None, typer.Argument(help="Only documents at or under this path (default: all).", show_default=False)
    ] = None,
    status: Annotated[
        str | None, typer.Option(help="Only documents of this status: ingested, 'not embedded', failed or stale.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="A JSON array of {path, type, status, entries, size_bytes, updated, reason}.")
    ] = False,
    db: DbOption = None,
    index_dir: IndexDirOption = None,
) -> None:
    """List the documents in the store: status, type, entries, size, last update (UTC) and path.

    Failed, stale and not-embedded documents show the reason under their line.
    """
    import json

    from jasper_rag.ingest.lifecycle import STATUSES, list_documents, render_table

    if status is not None and status not in STATUSES:
        raise fail("list", f"--status must be one of {', '.join(STATUSES)}; got '{status}'")
    store = _open_store("list", get_settings(), db, index_dir)
    try:
        documents = list_documents(store, status, folder)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps([doc.as_dict() for doc in documents], indent=2, ensure_ascii=False))
    else:
        typer.echo(render_table(documents))
