"""Export: a sentence-transformers folder that loads offline and gives our encoder's vectors."""

from __future__ import annotations

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from jasper_rag.export import export_sentence_transformers

TEXTS = ["the cat sat on the mat", "a question about paris", "protein cells and cancer risk in a study", "fire"]


@pytest.mark.parametrize("dim", [48, 16, None])
def test_exported_folder_gives_the_same_vectors(tmp_path, tiny_encoder, dim) -> None:
    saved = tiny_encoder.save(tmp_path / "model")
    folder = export_sentence_transformers(saved, tmp_path / "st", dim)
    exported = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    ours = tiny_encoder.encode(TEXTS, dim=dim or 48)
    theirs = exported.encode(TEXTS, convert_to_numpy=True)
    assert theirs.shape == ours.shape
    np.testing.assert_allclose(theirs, ours, atol=1e-5)


def test_export_refuses_a_non_empty_folder_and_unknown_heads(tmp_path, tiny_encoder) -> None:
    saved = tiny_encoder.save(tmp_path / "model")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        export_sentence_transformers(saved, tmp_path / "busy", 16)
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="no head of dimension 99"):
        export_sentence_transformers(saved, tmp_path / "other", 99)


def test_cli_export_and_train_report_errors_without_tracebacks(tmp_path, tiny_encoder) -> None:
    from typer.testing import CliRunner

    from jasper_rag.cli import app

    saved = tiny_encoder.save(tmp_path / "model")
    runner = CliRunner()
    done = runner.invoke(app, ["export", str(saved), "--head", "16", "--to", str(tmp_path / "st")])
    assert done.exit_code == 0 and (tmp_path / "st" / "modules.json").is_file()
    failed = runner.invoke(app, ["export", str(saved), "--head", "99", "--to", str(tmp_path / "st2")])
    assert failed.exit_code == 1 and "no head of dimension 99" in failed.output
    failed = runner.invoke(app, ["train", "--recipe", "no-such-recipe"])
    assert failed.exit_code == 1 and "no recipe 'no-such-recipe'" in failed.output
