"""The README and docs/ only mention commands that exist, stay short and link to files that exist.

Fast: parses Markdown, the Makefile and the typer app; no model is loaded.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from jasper_rag.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOC_FILES = [README, ROOT / "ingest" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 220

# Mentioned in the docs while a colleague adds them; remove an entry once it is registered / defined.

SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console"}
FENCE = re.compile(r"^```([\w-]*)\s*$")
BACKTICKED = re.compile(r"`([^`\n]+)`")
MAKE = re.compile(r"(?:^|[\s;&|(])make[ \t]+(?:-\S+[ \t]+)*([a-z][a-z0-9-]*)(?![=\w-])")
JASPER = re.compile(r"(?:jasper-rag|jasper_rag\.cli)[ \t]+(?:-\S+[ \t]+)*([a-z][a-z0-9-]*)")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def shell_snippets(path: Path) -> list[str]:
    """Lines of shell code blocks (comments dropped) and backticked spans of table rows."""
    snippets: list[str] = []
    language: str | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        fence = FENCE.match(line.strip())
        if fence:
            language = None if language is not None else fence.group(1)
            continue
        if language is not None:
            if language in SHELL_LANGUAGES:
                snippets.append(re.split(r"(?:^|\s)#", line, maxsplit=1)[0])
        elif line.lstrip().startswith("|"):
            snippets += BACKTICKED.findall(line)
    return snippets


def mentioned(pattern: re.Pattern[str], path: Path) -> set[str]:
    return {match for snippet in shell_snippets(path) for match in pattern.findall(snippet)}


def make_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][a-z0-9-]*)\s*:(?!=)", makefile, flags=re.MULTILINE))


def cli_commands() -> set[str]:
    return set(typer.main.get_command(app).commands)


def test_parsers_find_mentions() -> None:
    assert {"demo", "test"} <= mentioned(MAKE, README)
    assert {"ingest", "search", "eval"} <= mentioned(JASPER, README)
    assert {"ingest", "doctor", "search", "train"} <= cli_commands()
    assert {"demo", "test", "install", "ingest"} <= make_targets()


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_make_target_exists(path: Path) -> None:
    missing = mentioned(MAKE, path) - make_targets()
    assert not missing, f"{path.name} mentions make targets the Makefile does not define: {sorted(missing)}"


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_cli_command_is_registered(path: Path) -> None:
    missing = mentioned(JASPER, path) - cli_commands()
    assert not missing, f"{path.name} mentions jasper-rag commands that are not registered: {sorted(missing)}"


def test_readme_lists_every_cli_command() -> None:
    unlisted = cli_commands() - mentioned(JASPER, README)
    assert not unlisted, f"README's command table lacks: {sorted(unlisted)}"


def test_readme_is_short_and_timeless() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    for path in DOC_FILES:
        lowered = path.read_text(encoding="utf-8").lower()
        for phrase in ("session of", "issue #"):
            assert phrase not in lowered, f"{path.name} contains '{phrase}'"


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda path: str(path.relative_to(ROOT)))
def test_relative_links_point_to_files(path: Path) -> None:
    broken = []
    for target in LINK.findall(path.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        if not (path.parent / target.split("#", 1)[0]).exists():
            broken.append(target)
    assert not broken, f"{path.name} links to missing files: {broken}"
