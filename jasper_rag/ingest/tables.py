"""Tables as text: XLSX workbooks and CSV files that are not FAQs, and the rows of tables inside documents.

A table becomes text rows that name their columns, so every row (and every chunk) reads on its own:
``"Model: jasper-quick; Dim: 256; Size (MB): 90"``; the first non-empty row is the header (a blank
header cell is named by its column, "Column C"), empty cells are left out, and a table with a single
row is its cells joined by ``" | "``.

Pages: one per block of ``ROWS_PER_PAGE`` rows of a sheet (or CSV file), ``heading`` the sheet name (the
file name for a CSV), which also begins the page's text, so each block's first chunk shows where it
comes from.

Bounded work: every cell read counts against ``LoadLimits.max_table_cells``
(``JASPER_INGEST_MAX_TABLE_CELLS``) for the whole file, padding included (an empty row counts as one),
and every character of text made, cells and the column names repeated before their values, against
``LoadLimits.max_table_chars`` (``JASPER_INGEST_MAX_TABLE_CHARS``: cells of an XLSX may all show one long
shared string); a larger file is refused as soon as a count passes its limit ("too many table cells", "too
much table text"), never truncated silently. Column names are cut to ``MAX_COLUMN_NAME_CHARS``. An
XLSX is checked as a zip first (``jasper_rag.ingest.archive``), its declared sheet size is ignored (a
sheet claiming A1:XFD1048576 costs only the cells it holds) and it is read streaming with openpyxl
(``read_only=True``: rows are parsed as they are read; ``data_only=True``: the values cached with
formulas, never the formulas).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from openpyxl import load_workbook
from openpyxl.utils.exceptions import InvalidFileException

from jasper_rag.ingest.archive import check_zip, parse_errors
from jasper_rag.ingest.loaders import (
    FAQ_FIELDS,
    FaqContent,
    LoadError,
    LoadLimits,
    Page,
    TextContent,
    decode_text,
    load_faq_csv,
    require_text,
)
from jasper_rag.ingest.markup import Section

if TYPE_CHECKING:
    from _csv import Reader as CsvReader

    from openpyxl.worksheet._read_only import ReadOnlyWorksheet

ROWS_PER_PAGE = 25
MAX_HEADER_CHARS = 65_536  # the header row is looked for in this much of a CSV
MAX_CELL_CHARS = 32_767  # Excel's own limit per cell; longer CSV fields are cut here
MAX_COLUMN_NAME_CHARS = 100  # a header name repeated before every value of its column is cut here
CELL_SEPARATOR = " | "


class CellBudget:
    """Counts the cells and the characters of text one file's tables cost; ``LoadError`` once past
    ``limits.max_table_cells`` or ``limits.max_table_chars``."""

    def __init__(self, limits: LoadLimits) -> None:
        self.limit = limits.max_table_cells
        self.used = 0
        self.char_limit = limits.max_table_chars
        self.chars = 0

    def take(self, cells: int, where: str) -> None:
        """Count ``cells`` cells (an empty row as one) read ``where``."""
        self.used += max(cells, 1)
        if self.used > self.limit:
            raise LoadError(f"too many table cells: over {self.limit:,} by {where} (JASPER_INGEST_MAX_TABLE_CELLS)")

    def take_chars(self, chars: int, where: str) -> None:
        """Count ``chars`` characters of table text made ``where``."""
        self.chars += chars
        if self.chars > self.char_limit:
            raise LoadError(
                f"too much table text: over {self.char_limit:,} characters by {where} (JASPER_INGEST_MAX_TABLE_CHARS)"
            )

    def texts(self, cells: Iterable[str], where: str) -> list[str]:
        """The texts of one row's cells, each counted as it is made (a cell can be a long shared string)."""
        row = []
        for text in cells:
            self.take_chars(len(text), where)
            row.append(text)
        return row


def cell_text(value: object) -> str:
    """One cell as a line of text: numbers without a spurious ``.0``, dates and times in ISO form, no line breaks."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, dt.datetime) and value.time() == dt.time():  # a date: Excel stores it at midnight
        value = value.date().isoformat()
    elif isinstance(value, dt.datetime):
        value = value.isoformat(sep=" ")
    elif isinstance(value, dt.date | dt.time):
        value = value.isoformat()
    return " ".join(str(value)[:MAX_CELL_CHARS].split())


def table_lines(rows: Iterable[list[str]], budget: CellBudget) -> Iterator[str]:
    """Rows of cell texts as lines naming their columns (the first non-empty row is the header); a table
    of one row gives that row's cells joined by ``" | "``. The column names repeated count against ``budget``
    (the cells' own text is counted as the rows are read)."""
    header: list[str] | None = None
    lines = 0
    for cells in rows:
        if not any(cells):
            continue
        if header is None:
            header = cells
            continue
        lines += 1
        names = [(_column(header, n), value) for n, value in enumerate(cells) if value]
        budget.take_chars(sum(len(name) + 2 for name, _ in names), "the column names repeated in each row")
        yield "; ".join(f"{name}: {value}" for name, value in names)
    if header is not None and not lines:
        yield CELL_SEPARATOR.join(cell for cell in header if cell)


def _column(header: list[str], index: int) -> str:
    """The header's name of column ``index`` (0-based) cut to ``MAX_COLUMN_NAME_CHARS``, or its spreadsheet
    letters: "Column C"."""
    name = header[index][:MAX_COLUMN_NAME_CHARS].rstrip() if index < len(header) else ""
    if name:
        return name
    letters, number = "", index + 1
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return f"Column {letters}"


def table_pages(name: str, lines: Iterable[str]) -> list[Page]:
    """Lines of one table as pages of ``ROWS_PER_PAGE`` lines, each headed by ``name``."""
    pages, block = [], []
    for line in lines:
        block.append(line)
        if len(block) == ROWS_PER_PAGE:
            pages.append(_page(name, block))
            block = []
    if block:
        pages.append(_page(name, block))
    return pages


def _page(name: str, lines: list[str]) -> Page:
    """One page of a table's ``lines``, headed by ``name``, which also begins its text."""
    section = Section((name,), "\n".join(lines))
    return Page(None, section.text, section.heading)


def load_xlsx(path: Path, data: bytes, limits: LoadLimits) -> TextContent:
    """An Excel workbook: each worksheet's rows as text, pages headed by the sheet name (see the module
    docstring); chart sheets have no cells and are skipped."""
    check_zip(data, limits, "XLSX")
    budget = CellBudget(limits)
    pages: list[Page] = []
    with parse_errors("XLSX", InvalidFileException):
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            for sheet in workbook.worksheets:
                sheet.reset_dimensions()  # its declared size may lie: read only the cells it holds
                pages += table_pages(sheet.title, table_lines(_sheet_rows(sheet, budget), budget))
        finally:
            workbook.close()
    if not pages:
        raise LoadError("empty XLSX: no cell has a value")
    return require_text(pages)


def _sheet_rows(sheet: ReadOnlyWorksheet, budget: CellBudget) -> Iterator[list[str]]:
    """The cell texts of each row of a worksheet, counted against ``budget``."""
    where = f"sheet {sheet.title!r}"
    for row in sheet.iter_rows(values_only=True):
        budget.take(len(row), where)
        yield budget.texts((cell_text(value) for value in row), where)


def load_csv(path: Path, data: bytes, limits: LoadLimits) -> FaqContent | TextContent:
    """A CSV file: an FAQ when its header names both ``question`` and ``answer`` (``load_faq_csv``,
    exactly as before), refused when it names only one of them (an FAQ missing a column), else a table
    (pages headed by the file name)."""
    text = decode_text(data)
    header = {name.strip().lower() for name in next(csv.reader(io.StringIO(text[:MAX_HEADER_CHARS])), [])}
    if any(name in header for name in FAQ_FIELDS):
        return load_faq_csv(path, data, limits)
    budget = CellBudget(limits)
    try:
        lines = list(table_lines(_csv_rows(csv.reader(io.StringIO(text)), budget), budget))
    except csv.Error as err:
        raise LoadError(f"malformed CSV: {err}") from err
    if not lines:
        raise LoadError("empty CSV: no cell has a value")
    return require_text(table_pages(path.name, lines))


def _csv_rows(reader: CsvReader, budget: CellBudget) -> Iterator[list[str]]:
    """The cell texts of each CSV row, counted against ``budget``."""
    for row in reader:
        where = f"CSV line {reader.line_num}"
        budget.take(len(row), where)
        yield budget.texts((cell_text(cell) for cell in row), where)
