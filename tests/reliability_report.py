"""The reliability ledger: each hardening test records its figures here, and every record rewrites
``reports/reliability.md`` from ``reports/reliability.json`` (one section per test, each with the time it
was measured), so running any subset of the hardening tests refreshes only its own sections.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from tests.conftest import ROOT

REPORT_DIR = ROOT / "reports"
LEDGER = REPORT_DIR / "reliability.json"
REPORT = REPORT_DIR / "reliability.md"

SECTION_ORDER = (
    *("files", "hostile_run_sqlite", "hostile_run_postgresql", "fuzz", "uploads"),
    *("walk", "pdf_bounds", "loader_memory", "memory"),
    *("crash", "write_faults", "concurrency", "postgres", "safety"),
)
INTRO = (
    "# Reliability\n\n"
    "Written by the hardening tests (`tests/test_hardening_*.py`, part of `make test`); every figure below "
    "was measured by the run named in its section. Regenerate with "
    "`.venv/bin/python -m pytest -q tests/test_hardening_*.py`.\n"
)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def record(
    key: str,
    title: str,
    facts: dict[str, object],
    table: tuple[list[str], list[list[object]]] | None = None,
    notes: list[str] | None = None,
) -> None:
    """Store one section (replacing the previous measurement of ``key``) and rewrite the Markdown report."""
    sections = json.loads(LEDGER.read_text()) if LEDGER.is_file() else {}
    sections[key] = {
        "title": title,
        "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "facts": {name: str(value) for name, value in facts.items()},
        "table": [table[0], [[str(cell) for cell in row] for row in table[1]]] if table else None,
        "notes": notes or [],
    }
    _write_atomic(LEDGER, json.dumps(sections, indent=1, ensure_ascii=False) + "\n")
    _write_atomic(REPORT, render(sections))


def _cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def render(sections: dict[str, dict]) -> str:
    keys = [key for key in SECTION_ORDER if key in sections] + sorted(set(sections) - set(SECTION_ORDER))
    parts = [INTRO]
    for key in keys:
        section = sections[key]
        lines = [f"## {section['title']}", "", f"_Measured {section['measured']}._", ""]
        lines += [f"- **{name}**: {value}" for name, value in section["facts"].items()]
        if section["table"]:
            headers, rows = section["table"]
            lines += ["", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
            lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
        if section["notes"]:
            lines += [""] + [f"- {note}" for note in section["notes"]]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)
