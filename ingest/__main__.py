"""``python -m ingest PATH...`` from the repository root: the same as ``jasper-rag ingest PATH...``.

The ingestion code lives in ``jasper_rag/ingest/`` (installed with the package); this folder is where
people look for it, so it keeps this short entry point.
"""

import sys

from jasper_rag.cli import main

if __name__ == "__main__":
    main(["ingest", *sys.argv[1:]])
