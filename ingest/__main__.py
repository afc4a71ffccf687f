"""``python -m ingest PATH... [--rebuild] [--db URL]``"""

import logging

import typer

from ingest.cli import ingest_command

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    typer.run(ingest_command)
