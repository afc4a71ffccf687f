"""Markup to plain text, with headings kept as structure: Markdown, reStructuredText and HTML.

Each reader returns the document's ``Section`` s in order: the path of headings a section sits under
(``("Distillation", "Losses")``) and its body as plain text: paragraphs apart by a blank line, list
items and table rows one per line (table cells joined by ``" | "``), code blocks as their text, links as
their text, images as their alt text. No markup syntax is left (``**``, ``#``, underlines, backticks,
roles, directives), and nothing in the input is interpreted as HTML except in ``.html`` files.

- Markdown: CommonMark (+ tables, strikethrough) by markdown-it-py's token stream, raw HTML off (kept
  as the literal text it is). The input is parsed in segments of about ``SEGMENT_CHARS`` cut where a
  new top-level block starts, so memory stays bounded whatever the file (the token stream of one
  hostile megabyte is hundreds of megabytes); link reference definitions carry over to later segments.
- reStructuredText: a line reader (not docutils: on hostile input its inline parser is quadratic and
  its nesting recursive). One pass over the lines, and no regex backtracks past the next delimiter, so
  linear time. It reads section titles (underlined, or over- and underlined; levels by order of
  appearance), inline markup, roles, references, substitutions, lists, field lists, literal blocks,
  grid, simple and CSV tables, directives (admonitions keep their text under a label, code keeps its
  text; ``include``, ``raw`` and other file, markup or output directives are dropped), and drops
  comments and targets.
- HTML: a streaming pass (no tree), visible text only; ``h1``-``h6`` are headings.

Bounded work: every reader is linear in its input; heading titles are capped at ``MAX_TITLE_CHARS``
(a longer one also stays in full as the first text of its section) and heading paths at
``MAX_PATH_CHARS``, since every section's text repeats its path.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser

from markdown_it import MarkdownIt

HEADING_SEPARATOR = " > "
MAX_TITLE_CHARS = 150
MAX_PATH_CHARS = 300
ELLIPSIS = "…"


@dataclass(frozen=True)
class Section:
    """A part of a document under one path of headings (outermost first; empty before any heading)."""

    headings: tuple[str, ...]
    body: str

    @property
    def heading(self) -> str | None:
        """The heading path as one line (``"Distillation > Losses"``); None before any heading."""
        return heading_line(self.headings) if self.headings else None

    @property
    def text(self) -> str:
        """What is chunked and embedded: the heading line, a blank line, the body."""
        heading = self.heading
        return f"{heading}\n\n{self.body}" if heading and self.body else heading or self.body


def heading_line(headings: tuple[str, ...]) -> str:
    """The path as one line of at most ``MAX_PATH_CHARS``; the outermost titles give way first."""
    line = HEADING_SEPARATOR.join(headings)
    while len(line) > MAX_PATH_CHARS and len(headings) > 1:
        headings = headings[1:]
        line = ELLIPSIS + HEADING_SEPARATOR + HEADING_SEPARATOR.join(headings)
    return line if len(line) <= MAX_PATH_CHARS else line[: MAX_PATH_CHARS - 1] + ELLIPSIS


class Outline:
    """Collects headings and text blocks into sections.

    ``block(text, group)``: consecutive blocks of one group (a list, a table) are one per line, other
    blocks are apart by a blank line. ``label(prefix, indent)``: a prefix ("Note: ") for the next block
    when it is indented deeper than ``indent`` (the directive's content), else dropped.
    """

    def __init__(self) -> None:
        self._path: list[tuple[int, str]] = []
        self._sections: list[Section] = []
        self._blocks: list[str] = []
        self._group: object = None
        self._label: tuple[str, int] | None = None
        self._titles: list[str] = []

    def heading(self, level: int, title: str) -> None:
        title = " ".join(title.split())
        if not title:
            return
        self._close()
        self._titles.append(title)
        self._path = [(depth, name) for depth, name in self._path if depth < level]
        if len(title) > MAX_TITLE_CHARS:  # a paragraph marked as a heading: its text stays in the body too
            self._path.append((level, title[: MAX_TITLE_CHARS - 1].rstrip() + ELLIPSIS))
            self.block(title)
        else:
            self._path.append((level, title))

    def label(self, prefix: str, indent: int) -> None:
        self._label = (prefix, indent)

    def block(self, text: str, group: object = None, indent: int | None = None) -> None:
        text = text.strip("\n")
        if not text.strip():
            return
        if self._label is not None:
            prefix, outer = self._label
            self._label = None
            if indent is None or indent > outer:
                text = prefix + text.lstrip()
                group = None
        if self._blocks:
            self._blocks.append("\n" if group is not None and group == self._group else "\n\n")
        self._blocks.append(text)
        self._group = group

    def end_group(self) -> None:
        self._group = None

    def _close(self) -> None:
        self._label = None
        self._group = None
        if self._blocks:
            self._sections.append(Section(tuple(name for _, name in self._path), "".join(self._blocks)))
        self._blocks = []

    def sections(self) -> list[Section]:
        """The sections with text (a heading with no text of its own is still on its subsections' paths)."""
        self._close()
        if not self._sections and self._titles:  # headings only: they are the text
            return [Section((), "\n".join(self._titles))]
        return self._sections


# ----------------------------------------------------------------- Markdown
MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
SEGMENT_CHARS = 32_768  # a segment ends at the first safe place after this many characters...
MAX_SEGMENT_CHARS = 4 * SEGMENT_CHARS  # ...or at a line boundary after this many, wherever it is
MAX_LINE_CHARS = SEGMENT_CHARS  # longer lines are broken at a space (a soft line break in a paragraph)
FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
ATX_HEADING = re.compile(r"#{1,6}(?:[ \t]|$)")
ITEM = re.compile(r"(?:[-+*]|\d{1,9}[.)])(?:[ \t]|$)")
TABLE_DELIMITER = re.compile(r" {0,3}\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
FRONT_MATTER_KEY = re.compile(r"[A-Za-z_][\w-]*[ \t]*:(?:[ \t]|$)")
FRONT_MATTER_END = re.compile(r"(?:---|\.\.\.)[ \t]*$")
FRONT_MATTER_MAX_LINES = 200


def markdown_sections(text: str) -> list[Section]:
    """The sections of a Markdown (CommonMark) document."""
    outline = Outline()
    renderer = _MarkdownRenderer(outline)
    env: dict = {}  # link reference definitions, shared by the segments
    for segment in _markdown_segments(_without_front_matter(text)):
        renderer.render(MARKDOWN.parse(segment, env))
    return outline.sections()


def _without_front_matter(text: str) -> str:
    """``text`` without a leading YAML front-matter block (``---``, ``key: value`` lines, ``---``): metadata."""
    if not text.startswith("---\n") or not FRONT_MATTER_KEY.match(text, 4):
        return text
    lines = text.split("\n", FRONT_MATTER_MAX_LINES + 1)
    for number, line in enumerate(lines[1 : FRONT_MATTER_MAX_LINES + 1], start=1):
        if FRONT_MATTER_END.match(line):
            return "\n".join(lines[number + 1 :]) if number < len(lines) - 1 else ""
    return text


def _short_lines(text: str) -> Iterator[str]:
    """The lines of ``text`` (with their ends), lines over ``MAX_LINE_CHARS`` broken at a space."""
    lines = text.split("\n")
    for number, line in enumerate(lines):
        if number < len(lines) - 1:
            line += "\n"
        while len(line) > MAX_LINE_CHARS:
            cut = line.rfind(" ", MAX_LINE_CHARS // 2, MAX_LINE_CHARS)
            cut = cut if cut > 0 else MAX_LINE_CHARS
            yield line[:cut] + "\n"
            line = line[cut:].lstrip(" ")
        yield line


def _markdown_segments(text: str) -> Iterator[str]:
    """``text`` in pieces that parse as the whole would: each ends where a top-level block starts (after a
    blank line, at an ATX heading or a new top-level list item) outside fenced code. A piece that finds no
    such place within ``MAX_SEGMENT_CHARS`` ends at a line boundary; an open code fence or table header is
    then repeated at the start of the next piece."""
    lines: list[str] = []
    size = 0
    fence: str | None = None  # the open fence's marker
    table_header: list[str] = []  # the open table's header and delimiter rows
    previous = ""
    for line in _short_lines(text):
        if size >= SEGMENT_CHARS and fence is None and _block_starts(line, previous):
            yield "".join(lines)
            lines, size = [], 0
        elif size >= MAX_SEGMENT_CHARS:
            yield "".join(lines)
            lines = [fence + "\n"] if fence else list(table_header)
            size = sum(map(len, lines))
        lines.append(line)
        size += len(line)
        fence = _fence_after(line, fence)
        if fence is None and TABLE_DELIMITER.match(line) and "|" in line + previous and previous.strip():
            table_header = [previous if previous.endswith("\n") else previous + "\n", line]
        elif not line.strip():
            table_header = []
        previous = line
    if lines:
        yield "".join(lines)


def _block_starts(line: str, previous: str) -> bool:
    """True when ``line`` can only start a new top-level block (the input may be cut before it)."""
    if not line[:1].strip():
        return False
    if not previous.strip() or ATX_HEADING.match(line):
        return True
    return bool(ITEM.match(line) and ITEM.match(previous))


def _fence_after(line: str, fence: str | None) -> str | None:
    """The open code fence after ``line`` (None: not in fenced code)."""
    match = FENCE.match(line)
    if fence is None:
        if match and not (match.group(1)[0] == "`" and "`" in line[match.end() :]):
            return match.group(1)
        return None
    closing = match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence)
    return None if closing and not line[match.end() :].strip() else fence


class _MarkdownRenderer:
    """markdown-it tokens into an ``Outline`` (state carries over from one segment to the next)."""

    def __init__(self, outline: Outline) -> None:
        self.outline = outline
        self.lists: list[int | None] = []  # per open list: the next item's number (None: bullets)
        self.prefix = ""  # the open list item's number, for its first block
        self.heading: int | None = None  # the open heading's level
        self.row: list[str] | None = None  # the open table row's cells
        self.groups = 0

    def render(self, tokens) -> None:
        self.lists, self.prefix, self.heading, self.row = [], "", None, None  # a segment starts at top level
        self.outline.end_group()
        for token in tokens:
            kind = token.type
            if kind == "heading_open":
                self.heading = int(token.tag[1])
            elif kind == "heading_close":
                self.heading = None
            elif kind == "inline":
                self._inline(inline_text(token.children))
            elif kind in ("bullet_list_open", "ordered_list_open"):
                if not self.lists:
                    self.groups += 1
                start = token.attrs.get("start", 1) if kind == "ordered_list_open" else None
                self.lists.append(int(start) if start is not None else None)
            elif kind in ("bullet_list_close", "ordered_list_close"):
                self.lists.pop()
                if not self.lists:
                    self.outline.end_group()
            elif kind == "list_item_open" and self.lists:
                number = self.lists[-1]
                self.prefix = "" if number is None else f"{number}. "
                if number is not None:
                    self.lists[-1] = number + 1
            elif kind in ("fence", "code_block"):
                self._block(token.content.rstrip("\n"))
            elif kind == "table_open":
                self.groups += 1
            elif kind == "table_close":
                self.outline.end_group()
            elif kind == "tr_open":
                self.row = []
            elif kind == "tr_close" and self.row is not None:
                self.outline.block(" | ".join(self.row), group=self.groups)
                self.row = None

    def _inline(self, text: str) -> None:
        if self.heading is not None:
            self.outline.heading(self.heading, text)
        elif self.row is not None:
            self.row.append(" ".join(text.split()))
        else:
            self._block(text)

    def _block(self, text: str) -> None:
        self.outline.block(self.prefix + text, group=self.groups if self.lists else None)
        self.prefix = ""


def inline_text(tokens) -> str:
    """The text of markdown-it inline tokens: markup dropped, links as their text, images as their alt text."""
    parts = []
    for token in tokens or ():
        if token.type in ("text", "text_special", "code_inline"):
            parts.append(token.content)
        elif token.type == "softbreak":
            parts.append(" ")
        elif token.type == "hardbreak":
            parts.append("\n")
        elif token.type == "image":
            parts.append(inline_text(token.children))
    return "".join(parts)


# ----------------------------------------------------------------- reStructuredText
PUNCTUATION = re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
ADORNMENT = re.compile(rf"([{PUNCTUATION}])\1+$")
MIN_TRANSITION = 4  # an adornment at least this long is a title underline even under a longer title
BULLET = re.compile(r"[-*+•‣⁃](?: +|$)")
ENUMERATOR = re.compile(r"(\(?)(?:\d+|#|[A-Za-z]|[ivxlcdm]+|[IVXLCDM]+)([.)])(?: +|$)")
FIELD = re.compile(r":([^:\s`][^:`]*):(?: +|$)")
OPTION = re.compile(r":([^:\s][^:]*):(?: +|$)")
LINE_BLOCK = re.compile(r"\|(?: +|$)")
GRID_BORDER = re.compile(r"\+(?:[-=]+\+)+$")
SIMPLE_BORDER = re.compile(r"=+(?: +=+)+$")
SIMPLE_RULE = re.compile(r"[-=]+(?: +[-=]+)*$")
NAME = r"[A-Za-z0-9][\w.+-]*(?::[A-Za-z0-9][\w.+-]*)*"
DIRECTIVE = re.compile(rf"\.\. +({NAME})::(?: +(.*))?$")
SUBSTITUTION_DEFINITION = re.compile(r"\.\. +\|[^|]+\|")
REPLACEMENT = re.compile(r" *\.\. +\|([^|]+)\| +replace:: +(.+)$")
TARGET = re.compile(r"\.\. +_")
FOOTNOTE = re.compile(r"\.\. +\[[^\]\s]+\](?: +|$)")
INLINE = re.compile(
    r"\\(?P<escaped>.)"
    r"|``(?P<literal>[^`]+(?:`[^`]+)*)``"
    rf"|(?<![\w:]):{NAME}:`(?P<role>[^`]*)`"
    rf"|`(?P<interpreted>[^`]+)`(?::{NAME}:|__?)?"
    r"|(?<![\w*])\*\*(?P<strong>[^\s*](?:[^*]*[^\s*])?)\*\*(?![\w*])"
    r"|(?<![\w*])\*(?P<emphasis>[^\s*](?:[^*]*[^\s*])?)\*(?![\w*])"
    r"|(?<![\w|])\|(?P<substitution>[^\s|](?:[^|]*[^\s|])?)\|(?:__?)?(?![\w|])"
    r"| ?\[(?:\d+|#[\w-]*|\*|[A-Za-z][\w.-]*)\]_(?!\w)"  # footnote and citation references: dropped
    r"|(?<![\w.-])(?P<reference>[^\W_]\w*?)__?(?!\w)"
)
ADMONITIONS = {
    name: name.capitalize()
    for name in ("attention", "caution", "danger", "error", "hint", "important", "note", "tip", "warning", "todo")
} | {"seealso": "See also"}
VERSIONED = {
    "versionadded": "Added in version",
    "versionchanged": "Changed in version",
    "deprecated": "Deprecated since version",
    "versionremoved": "Removed in version",
}
LITERAL_DIRECTIVES = {"code", "code-block", "sourcecode", "math", "parsed-literal", "productionlist", "doctest"}
SKIPPED_DIRECTIVES = {  # file insertion, raw markup, output settings: nothing of them is text
    *("include", "literalinclude", "raw", "toctree", "contents", "sectnum", "section-numbering", "header"),
    *("footer", "meta", "target-notes", "highlight", "default-role", "role", "index", "tabularcolumns"),
    *("autosummary", "image", "replace", "unicode", "date", "testsetup", "testcleanup", "currentmodule"),
}
UNTITLED_DIRECTIVES = {"container", "class", "rst-class", "cssclass", "only", "ifconfig", "compound", "figure"}


def rst_sections(text: str) -> list[Section]:
    """The sections of a reStructuredText document."""
    return _RstReader(text).read()


def rst_inline(text: str, substitutions: dict[str, str] | None = None) -> str:
    """One paragraph's text without reStructuredText inline markup (emphasis, literals, roles, references,
    substitutions: by ``substitutions``, else their names; footnote references, escapes)."""
    return INLINE.sub(lambda match: _inline_replacement(match, substitutions or {}), text)


def _inline_replacement(match: re.Match, substitutions: dict[str, str]) -> str:
    group = match.lastgroup
    if group is None:  # a footnote or citation reference
        return ""
    value = match.group(group)
    if group == "escaped":
        return "" if value.isspace() else value
    if group == "role":
        value = _link_text(value)
        return value[1:].rsplit(".", 1)[-1] if value.startswith("~") else value.removeprefix("!")
    if group == "interpreted":
        return _link_text(value)
    if group == "substitution":
        return substitutions.get(value, value)
    return value


def _link_text(text: str) -> str:
    """``text <target>`` -> text (the target when there is no text)."""
    if text.endswith(">") and (start := text.rfind("<")) >= 0:
        return text[:start].strip() or text[start + 1 : -1]
    return text


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _adornment(line: str) -> bool:
    return bool(ADORNMENT.match(line))


def _explicit_markup(stripped: str) -> bool:
    return stripped.startswith("..") and (len(stripped) == 2 or stripped[2] == " ")


class _RstReader:
    """One pass over the lines (each line is looked at a bounded number of times)."""

    def __init__(self, text: str) -> None:
        self.lines = [line.expandtabs(8).rstrip() for line in text.split("\n")]
        self.outline = Outline()
        self.styles: list[tuple[str, bool]] = []  # title adornments in order of first use: their levels
        self.tables = 0
        self.substitutions: dict[str, str] = {}  # |name| -> its one-line "replace::" text
        for line in self.lines:
            if "replace::" in line and (match := REPLACEMENT.match(line)):
                self.substitutions.setdefault(match.group(1), rst_inline(match.group(2)))

    def inline(self, text: str) -> str:
        return rst_inline(text, self.substitutions)

    def read(self) -> list[Section]:
        i = 0
        while i < len(self.lines):
            line = self.lines[i]
            i = self._block(i, line, line.lstrip(" "), _indent(line)) if line else i + 1
        return self.outline.sections()

    def _line(self, i: int) -> str:
        return self.lines[i] if i < len(self.lines) else ""

    def _block(self, i: int, line: str, stripped: str, indent: int) -> int:
        """Read the block that starts at line ``i``; returns the line after it."""
        after = self._line(i + 1)
        if stripped == "::":
            return self._paragraph(i, stripped, indent)
        if indent == 0 and _adornment(line):
            if after.strip() and not _adornment(after.strip()) and self._line(i + 2) == line:
                self._title(after.strip(), line[0], overline=True)
                return i + 3
            return i + 1  # a transition (or a stray adornment)
        if indent == 0 and _adornment(after) and (len(after) >= len(line) or len(after) >= MIN_TRANSITION):
            self._title(line, after[0], overline=False)
            return i + 2
        if _explicit_markup(stripped):
            return self._explicit(i, stripped, indent)
        if stripped.startswith("__ ") or stripped == "__":  # an anonymous hyperlink target
            return self._block_end(i + 1, indent)
        if GRID_BORDER.match(stripped):
            return self._grid_table(i)
        if SIMPLE_BORDER.match(stripped):
            return self._simple_table(i)
        if stripped.startswith(">>>"):  # a doctest block
            return self._verbatim(i, self._run_end(i), indent)
        if LINE_BLOCK.match(stripped):
            end = self._run_end(i)
            texts = (self.inline(LINE_BLOCK.sub("", line.strip(), count=1)) for line in self.lines[i:end])
            self.outline.block("\n".join(text for text in texts if text), indent=indent)
            return end
        return self._paragraph(i, stripped, indent)

    def _title(self, title: str, char: str, overline: bool) -> None:
        style = (char, overline)
        if style not in self.styles:
            self.styles.append(style)
        self.outline.heading(self.styles.index(style) + 1, self.inline(title))

    def _run_end(self, start: int) -> int:
        """The first blank line from ``start``."""
        end = start
        while end < len(self.lines) and self.lines[end]:
            end += 1
        return end

    def _block_end(self, start: int, indent: int) -> int:
        """The first line from ``start`` that is not blank and is indented ``indent`` or less."""
        end = start
        while end < len(self.lines) and (not self.lines[end] or _indent(self.lines[end]) > indent):
            end += 1
        return end

    def _verbatim(self, start: int, end: int, indent: int) -> int:
        """Lines ``start:end`` as they are (code), less their common indentation."""
        body = self.lines[start:end]
        margin = min((_indent(line) for line in body if line), default=0)
        self.outline.block("\n".join(line[margin:] for line in body), indent=indent)
        return end

    def _explicit(self, i: int, stripped: str, indent: int) -> int:
        """Directives, footnotes, targets, substitution definitions and comments (``.. ``)."""
        if SUBSTITUTION_DEFINITION.match(stripped) or TARGET.match(stripped):
            return self._block_end(i + 1, indent)
        footnote = FOOTNOTE.match(stripped)
        if footnote:  # its text is a paragraph
            return self._paragraph(i, stripped[footnote.end() :], indent + 3, marked=False)
        directive = DIRECTIVE.match(stripped)
        if directive is None:  # a comment; an empty one followed by a blank line ends at once
            return i + 1 if stripped == ".." and not self._line(i + 1) else self._block_end(i + 1, indent)
        name, argument = directive.group(1).lower(), (directive.group(2) or "").strip()
        content = i + 1
        options: dict[str, str] = {}
        while content < len(self.lines) and _indent(self.lines[content]) > indent:
            option = OPTION.match(self.lines[content].lstrip(" "))
            if option is None:
                break
            options[option.group(1).lower()] = self.lines[content].lstrip(" ")[option.end() :].strip()
            content += 1
        if options.get("alt") and name in ("image", "figure"):
            self.outline.block(self.inline(options["alt"]), indent=indent + 1)
        if name in SKIPPED_DIRECTIVES:
            return self._block_end(content, indent)
        if name in LITERAL_DIRECTIVES:
            if name == "math" and argument:
                self.outline.block(argument, indent=indent + 1)
            return self._verbatim(content, self._block_end(content, indent), indent + 1)
        if name == "csv-table":
            if argument:
                self.outline.block(self.inline(argument), indent=indent + 1)
            return self._csv_table(options.get("header", ""), content, self._block_end(content, indent))
        if name in ADMONITIONS:
            self.outline.label(f"{ADMONITIONS[name]}: ", indent)
            if argument:  # the first paragraph starts on the directive's line
                return self._paragraph(i, argument, indent + 3, marked=False)
        elif name in VERSIONED:
            label = f"{VERSIONED[name]} {self.inline(argument)}".strip()
            if self._has_content(content, indent):
                self.outline.label(f"{label}: ", indent)
            else:
                self.outline.block(label, indent=indent + 1)
        elif argument and name not in UNTITLED_DIRECTIVES and not name.startswith("auto"):
            self.outline.block(self.inline(argument), indent=indent + 1)  # a title, a caption, a signature
        return content  # the content is text like any other: read on

    def _has_content(self, start: int, indent: int) -> bool:
        end = start
        while end < len(self.lines) and not self.lines[end]:
            end += 1
        return end < len(self.lines) and _indent(self.lines[end]) > indent

    def _csv_table(self, header: str, start: int, end: int) -> int:
        rows = [line.strip() for line in [header, *self.lines[start:end]] if line.strip()]
        try:
            table = list(csv.reader(rows, skipinitialspace=True))
        except csv.Error:
            table = [[row] for row in rows]
        self._rows([" | ".join(cell.strip() for cell in row if cell.strip()) for row in table])
        return end

    def _rows(self, rows: list[str]) -> None:
        """Table rows, one per line."""
        self.tables += 1
        for row in rows:
            self.outline.block(self.inline(row), group=("table", self.tables))
        self.outline.end_group()

    def _grid_table(self, i: int) -> int:
        """A grid table: each row (the lines between two borders) one line, its cells joined by " | "."""
        end = i
        while end < len(self.lines) and self.lines[end].lstrip(" ")[:1] in ("+", "|"):
            end += 1
        rows: list[str] = []
        lines: list[list[str]] = []  # the current row's lines, split into cells
        for line in [*self.lines[i:end], "+-+"]:
            stripped = line.strip()
            if not GRID_BORDER.match(stripped):
                lines.append(stripped.strip("|").split("|"))
                continue
            if len({len(cells) for cells in lines}) == 1:  # cells over several lines: each cell's text joined
                cells = [" ".join(" ".join(column).split()) for column in zip(*lines, strict=True)]
            else:  # spanned cells: line by line
                cells = [" ".join(cell.split()) for cells in lines for cell in cells]
            if any(cells):
                rows.append(" | ".join(cell for cell in cells if cell))
            lines = []
        self._rows(rows)
        return end

    def _simple_table(self, i: int) -> int:
        """A simple table (columns under runs of ``=``), rows one per line: it ends at a border followed by
        a blank line."""
        starts = [match.start() for match in re.finditer(r"=+", self.lines[i])]
        rows, end = [], i + 1
        while end < len(self.lines):
            line = self.lines[end]
            end += 1
            if not line:
                if not self._line(end):
                    break
                continue
            if SIMPLE_RULE.match(line.strip()):
                if line.strip()[0] == "=" and not self._line(end):
                    break
                continue
            cells = (line[start:stop].strip() for start, stop in zip(starts, [*starts[1:], None], strict=True))
            rows.append(" | ".join(cell for cell in cells if cell))
        self._rows([row for row in rows if row])
        return end

    def _paragraph(self, i: int, first: str, indent: int, marked: bool = True) -> int:
        """A paragraph, list item or field from line ``i`` (whose text is ``first``): its lines joined; a
        literal block after ``::`` is read as code."""
        text, item = self._unmarked(first) if marked else (first, False)
        parts = [text]
        end = i + 1
        while end < len(self.lines) and self.lines[end]:
            line = self.lines[end]
            stripped = line.lstrip(" ")
            if self._starts_block(stripped) or (not item and end == i + 1 and _indent(line) > indent):
                break  # a new item or block, or under a one-line paragraph a definition
            if not (_adornment(stripped) and len(stripped) >= MIN_TRANSITION):  # no title here: dropped
                parts.append(stripped)
            end += 1
        text = " ".join(parts)
        literal = text.endswith("::")
        if literal:
            text = text[:-2] if len(text) == 2 or text[-3].isspace() else text[:-1]
        self.outline.block(self.inline(text.strip()), group="item" if item else None, indent=indent)
        if not item:
            self.outline.end_group()
        if literal:
            start = end
            while start < len(self.lines) and not self.lines[start]:
                start += 1
            if start < len(self.lines) and _indent(self.lines[start]) > indent:
                return self._verbatim(start, self._block_end(start, indent), indent)
        return end

    @staticmethod
    def _unmarked(stripped: str) -> tuple[str, bool]:
        """A line's text without its list markers (an enumerator stays, but ``#.``) or field colons; True
        when it had one."""
        item = False
        while bullet := BULLET.match(stripped):  # "* - cell" in list tables
            stripped, item = stripped[bullet.end() :], True
        if item:
            return stripped, True
        enumerator = ENUMERATOR.match(stripped)
        if enumerator and not (enumerator.group(1) and enumerator.group(2) == "."):
            marker = stripped[: enumerator.end()].strip()
            rest = stripped[enumerator.end() :]
            return (rest if "#" in marker else f"{marker} {rest}".rstrip()), True
        field = FIELD.match(stripped)
        if field:
            return f"{field.group(1)}: {stripped[field.end() :]}".rstrip(), True
        return stripped, False

    @staticmethod
    def _starts_block(stripped: str) -> bool:
        return bool(
            BULLET.match(stripped)
            or FIELD.match(stripped)
            or _explicit_markup(stripped)
            or LINE_BLOCK.match(stripped)
            or stripped.startswith(">>>")
            or (ENUMERATOR.match(stripped) and not stripped[0].isalpha())
        )


# ----------------------------------------------------------------- HTML
LINE_BREAKS = re.compile("[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")  # what str.splitlines() splits at
HTML_NOISE = ("script", "style", "noscript", "template", "svg")
HTML_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
HTML_BLOCKS = (
    *("p", "div", "section", "article", "header", "footer", "main", "aside", "nav", "blockquote", "pre"),
    *HTML_HEADINGS,
    *("li", "dt", "dd", "tr", "table", "br", "hr", "title", "figcaption", "ul", "ol", "dl"),
)


class VisibleText(HTMLParser):
    """The visible text of HTML in one streaming pass (no tree: linear time even for hostile nesting):
    each block on a line (line breaks in the source only count inside ``<pre>``); ``h1``-``h6`` start
    sections, and ``<title>`` heads the text before the first of them. Feed it, close it, then call
    ``sections()``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.outline = Outline()
        self.parts: list[str] = []
        self.hidden = 0  # how deep inside script, style and other invisible elements
        self.pre = 0  # how deep inside <pre>
        self.heading: tuple[int, list[str]] | None = None  # the open heading's level and text
        self.title: list[str] | None = None  # the open <title>'s text
        self.page_title = ""
        self.headed = False  # the text so far has a heading

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in HTML_NOISE:
            self.hidden += 1
        elif tag in HTML_BLOCKS:
            self._end_heading()
            self._end_title()
            self.pre += tag == "pre"
            if tag in HTML_HEADINGS:
                self._flush()
                self.heading = (int(tag[1]), [])
            elif tag == "title":
                self.title = []
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in HTML_NOISE:
            self.hidden = max(0, self.hidden - 1)
        elif tag in HTML_BLOCKS:
            self._end_heading()
            self._end_title()
            self.pre = max(0, self.pre - (tag == "pre"))
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.hidden:
            return
        if self.heading is not None:
            self.heading[1].append(data)
        elif self.title is not None:
            self.title.append(data)
        else:
            self.parts.append(data if self.pre else LINE_BREAKS.sub(" ", data))

    def _end_heading(self) -> None:
        if self.heading is not None:
            level, text = self.heading
            self.heading = None
            self.outline.heading(level, "".join(text))
            self.headed = True

    def _end_title(self) -> None:
        if self.title is not None:
            self.page_title = self.page_title or " ".join("".join(self.title).split())
            self.title = None

    def _flush(self) -> None:
        lines = (" ".join(line.split()) for line in "".join(self.parts).splitlines())
        body = "\n".join(line for line in lines if line)
        self.parts = []
        if body and not self.headed and self.page_title:
            self.outline.heading(1, self.page_title)
            self.headed = True
        self.outline.block(body)

    def sections(self) -> list[Section]:
        self._end_heading()
        if self.title is not None:  # never closed: it held the rest of the page
            self.parts.extend(self.title)
            self.title = None
        self._flush()
        sections = self.outline.sections()
        return sections or ([Section((), self.page_title)] if self.page_title else [])
