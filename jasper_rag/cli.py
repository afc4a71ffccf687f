"""`jasper-rag` command line: thin wrappers over the library modules."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

from jasper_rag.config import get_settings

app = typer.Typer(
    help="jasper_rag: distilled embedding models (Jasper & Stella) for retrieval and RAG.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _setup(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")


@app.command()
def models() -> None:
    """Resolve the packaged model weights to local folders (unpacking them once) and list them."""
    from jasper_rag.weights import PACKAGED_MODELS, WeightsNotInstalledError, model_path

    failed = False
    for name, spec in PACKAGED_MODELS.items():
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
        typer.echo(f"model '{name}' not found: build it with `make train`", err=True)
        raise typer.Exit(1)
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


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
