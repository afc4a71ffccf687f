"""Reading JSON-lines input with errors that name the file and line (one reader for every format)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator


def json_objects(lines: Iterable[str], error: type[Exception], where: str = "") -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for each non-blank line; anything but a JSON object raises ``error``
    with ``where`` (a file name, or empty) and the line number."""
    prefix = f"{where}, " if where else ""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise error(f"{prefix}line {number}: invalid JSON ({err.msg})") from None
        except RecursionError:
            raise error(f"{prefix}line {number}: JSON nested too deeply") from None
        if not isinstance(record, dict):
            raise error(f"{prefix}line {number}: expected an object, got {type(record).__name__}")
        yield number, record
