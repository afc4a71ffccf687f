"""One convention for every `jasper-rag` command: errors, exit codes, list options and terminal output.

Exit status: 0 done, 1 the command could not do its job (one line on stderr: ``<command> failed: <why>``),
3 it ran but some inputs failed (ingest: the summary lists them).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from pydantic import ValidationError

EXIT_FAILED = 1
EXIT_PARTIAL = 3


def fail(command: str, message: str) -> typer.Exit:
    """Print ``<command> failed: <message>`` on stderr; return the Exit to raise."""
    typer.echo(f"{command} failed: {message}", err=True)
    return typer.Exit(EXIT_FAILED)


@contextmanager
def exit_on(command: str, *errors: type[Exception]) -> Iterator[None]:
    """Report the expected ``errors`` of ``command`` as one line on stderr and exit with status 1."""
    try:
        yield
    except errors as err:
        raise fail(command, str(err)) from None


def split(value: str | None) -> list[str] | None:
    """``"a, b,"`` -> ``["a", "b"]``; empty or None -> None."""
    return [item.strip() for item in value.split(",") if item.strip()] if value else None


def setup_logging(verbose: bool) -> None:
    """Our own progress at INFO; libraries (FAISS's loader, transformers, ...) only speak up on warnings.

    ``--verbose`` shows everything at DEBUG.
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.getLogger("jasper_rag").setLevel(logging.DEBUG if verbose else logging.INFO)
    os.environ["TRANSFORMERS_VERBOSITY"] = "debug" if verbose else "error"


def settings_problems(error: ValidationError) -> str:
    """A pydantic error of ``Settings`` in one line, each problem named by its environment variable."""
    problems = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else "settings"
        message = str(item["msg"]).removeprefix("Value error, ")
        problems.append(f"JASPER_{field.upper()}: {message}")
    return "; ".join(problems)
