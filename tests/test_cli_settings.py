"""A bad JASPER_* value stops every command with one line naming the variable, never a traceback."""

from __future__ import annotations

from typer.testing import CliRunner

from jasper_rag.cli import app


def test_bad_settings_are_one_line_naming_each_variable(monkeypatch, fresh_settings) -> None:
    from jasper_rag.config import get_settings

    monkeypatch.setenv("JASPER_BACKEND", "fast")
    monkeypatch.setenv("JASPER_BATCH_SIZE", "0")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["info", "minilm-l6"])
    assert result.exit_code == 1
    line = result.output.strip()
    assert line.startswith("info failed: ") and "\n" not in line and "Traceback" not in result.output
    assert "JASPER_BACKEND: unknown backend 'fast'" in line and "JASPER_BATCH_SIZE: " in line
