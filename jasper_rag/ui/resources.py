"""The model and the index, loaded once per process (``st.cache_resource``), and what to say when they can't be.

Searches re-read the store's commits themselves (``Searcher.search`` refreshes), so files ingested
from the UI or by ``make ingest`` show up without a restart. ``reload()`` drops the cached model and
store, e.g. after ``make train`` replaced the model folder.

A problem is shown as one line and its detail as one more (``error_line``: no traceback, no SQL, any
password in a URL masked); a database that cannot be reached is one of them, not a crash.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from jasper_rag.config import Settings
from jasper_rag.encoder import JasperEncoder, load_encoder
from jasper_rag.search import Searcher
from jasper_rag.store import Store, StoreModelMismatchError
from jasper_rag.ui.safe import error_line, public_url
from jasper_rag.weights import WeightsNotInstalledError


@dataclass(frozen=True)
class Problem:
    """Why the UI cannot search (one line), what the user can do about it (Markdown) and the error (one line)."""

    title: str
    detail: str
    fix: str


@st.cache_resource(show_spinner="Loading the model…")
def cached_encoder(model: str) -> JasperEncoder:
    return load_encoder(model)


@st.cache_resource(show_spinner="Opening the index…")
def cached_searcher(model: str, database_url: str, indexes_dir: str, factory: str, batch_size: int) -> Searcher:
    return Searcher(Store(database_url, indexes_dir, factory), cached_encoder(model), batch_size)


def reload() -> None:
    """Forget the cached model and store: the next ``open_searcher`` loads them again."""
    cached_searcher.clear()
    cached_encoder.clear()


def open_searcher(settings: Settings) -> tuple[Searcher | None, Problem | None]:
    """The searcher of the configured model and store, or the problem that prevents it."""
    try:
        searcher = cached_searcher(
            settings.model,
            settings.database_url,
            str(settings.indexes_dir),
            settings.index_factory,
            settings.batch_size,
        )
    except StoreModelMismatchError as err:
        return None, Problem(
            "The index was built by another model",
            error_line(err),
            "Rebuild the index with the current model (`jasper-rag ingest --rebuild FOLDER`), "
            "or start the UI with the model that built it (`JASPER_MODEL=... make app`).",
        )
    except (FileNotFoundError, WeightsNotInstalledError) as err:
        return None, Problem(
            f"No model at `{settings.model}`",
            error_line(err),
            "Build the default model with `make train` (quick profile, about 15 minutes on 2 cores), or run "
            "`make demo`, which does everything. To try the UI at once with the packaged MiniLM: "
            "`JASPER_MODEL=minilm-l6 JASPER_INDEXES_DIR=indexes/minilm make app`.",
        )
    except SQLAlchemyError as err:  # unreachable server, wrong credentials, malformed URL, locked file
        return None, Problem(
            "The database could not be opened",
            f"{type(err).__name__}: {error_line(err)}",
            database_fix(settings),
        )
    except (OSError, RuntimeError, ValueError) as err:
        return None, Problem(
            "The model or the index could not be opened",
            f"{type(err).__name__}: {error_line(err)}",
            "Check `JASPER_MODEL` and `JASPER_INDEXES_DIR`; `jasper-rag doctor` checks the index.",
        )
    return searcher, None


def database_fix(settings: Settings) -> str:
    """What to check when the database fails (its URL shown with the password masked)."""
    return (
        f"Check that the database at `{public_url(settings.database_url)}` is reachable and `JASPER_DB_URL` "
        "is right, then press **Reload model and index** (or reload the page); `jasper-rag doctor` checks the store."
    )
