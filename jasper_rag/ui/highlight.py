"""Snippets of hit texts with the query's words marked, as safe HTML (everything else inert: ``safe_text``)."""

from __future__ import annotations

import re

from jasper_rag.ui.safe import safe_text

STOPWORDS = frozenset(
    "a an and are as at be by can do does for from how i if in is it my of on or the to was what when where "
    "which who why will with you".split()
)
WORD = re.compile(r"\w+", re.UNICODE)
PREFIX_MIN = 4  # query words this long also mark longer words they start ("train" -> "trained")
RULE = re.compile(r"^\s*([=\-~^*#_`+])\1{2,}\s*$")  # reST title underlines, Markdown rules
HEADING = re.compile(r"^\s*#{1,6}\s+(.*)$")
BOLD = re.compile(r"\*\*|__")
HEADING_END = " ·"


def query_terms(query: str) -> list[str]:
    """The query's distinct content words, lower-cased, longest first (stopwords and 1-letter words dropped)."""
    words = {word.lower() for word in WORD.findall(query)}
    terms = [word for word in words if len(word) > 1 and word not in STOPWORDS]
    return sorted(terms, key=lambda word: (-len(word), word))


def term_pattern(terms: list[str]) -> re.Pattern[str] | None:
    """A case-insensitive regex matching any term as a whole word (or as a word's start for long terms)."""
    if not terms:
        return None
    parts = [re.escape(term) + (r"\w*" if len(term) >= PREFIX_MIN else r"\b") for term in terms]
    return re.compile(r"\b(?:" + "|".join(parts) + ")", re.IGNORECASE)


def plain(text: str) -> str:
    """``text`` without Markdown / reST decoration (headings end with " ·"), whitespace collapsed."""
    lines: list[str] = []
    for line in text.splitlines():
        if RULE.match(line):
            if lines and lines[-1].strip() and not lines[-1].endswith(HEADING_END):
                lines[-1] += HEADING_END
            continue
        heading = HEADING.match(line)
        lines.append(heading.group(1) + HEADING_END if heading else line)
    return " ".join(BOLD.sub("", " ".join(lines)).split())


def snippet(text: str, query: str, width: int = 320) -> str:
    """At most ``width`` characters of ``text`` (as ``plain`` text) around its first query term."""
    flat = plain(text)
    if len(flat) <= width:
        return flat
    pattern = term_pattern(query_terms(query))
    match = pattern.search(flat) if pattern else None
    start = 0 if match is None else max(0, match.start() - width // 4)
    start = min(start, len(flat) - width)
    if start > 0:
        space = flat.find(" ", start)
        start = space + 1 if 0 <= space < start + 20 else start
    end = start + width
    if end < len(flat):
        space = flat.rfind(" ", start, end)
        end = space if space > start + width // 2 else end
    return ("…" if start > 0 else "") + flat[start:end] + ("…" if end < len(flat) else "")


def highlight(text: str, query: str) -> str:
    """``text`` as HTML with the query's terms wrapped in ``<mark>``; every piece of it through ``safe_text``."""
    pattern = term_pattern(query_terms(query))
    if pattern is None:
        return safe_text(text)
    parts: list[str] = []
    last = 0
    for match in pattern.finditer(text):
        parts.append(safe_text(text[last : match.start()]))
        parts.append(f"<mark>{safe_text(match.group(0))}</mark>")
        last = match.end()
    parts.append(safe_text(text[last:]))
    return "".join(parts)
