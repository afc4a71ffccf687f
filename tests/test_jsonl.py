"""The shared JSON-lines reader: objects with line numbers, clear errors for everything else."""

from __future__ import annotations

import pytest

from jasper_rag.jsonl import json_objects


class BadInput(ValueError):
    pass


def test_objects_come_with_their_line_numbers_blank_lines_skipped() -> None:
    assert list(json_objects(['{"a": 1}', "", "  ", '{"b": 2}'], BadInput)) == [(1, {"a": 1}), (4, {"b": 2})]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{oops", "invalid JSON"),
        ("[1, 2]", "expected an object, got list"),
        ("[" * 100_000, "JSON nested too deeply"),
    ],
)
def test_bad_lines_raise_the_callers_error_naming_file_and_line(line: str, reason: str) -> None:
    with pytest.raises(BadInput, match=rf"data\.jsonl, line 2: ({reason})"):
        list(json_objects(['{"ok": true}', line], BadInput, "data.jsonl"))
