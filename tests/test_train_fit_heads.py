"""fit-heads: reduced heads refitted as the top principal directions of the full head on given texts."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from jasper_rag.encoder import CARD_FILE, RECIPE_KEY, load_encoder
from jasper_rag.train.data import CorpusFormatError
from jasper_rag.train.fit_heads import FIT_RECORD, fit_heads_on_file, fit_reduced_heads
from tests.conftest import TINY_WORDS


def _texts(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(TINY_WORDS, k=rng.randint(3, 12))) for _ in range(count)]


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.clone() for name, tensor in module.state_dict().items()}


def test_reduced_heads_become_the_full_heads_principal_directions(tiny_encoder) -> None:
    texts = _texts(60)
    backbone, full = _state(tiny_encoder.backbone), _state(tiny_encoder.heads["full"])
    d8 = _state(tiny_encoder.heads["d8"])
    assert fit_reduced_heads(tiny_encoder, texts, ["d16"], show_progress=False) == ["d16"]
    with torch.no_grad():
        hidden = tiny_encoder.pool_texts(texts)
        outputs = tiny_encoder.heads["full"](hidden).double().numpy()
        reduced = tiny_encoder.heads["d16"](hidden).double().numpy()
    eigenvalues = np.linalg.eigvalsh(np.cov(outputs, rowvar=False, bias=True))[::-1]
    np.testing.assert_allclose(reduced.mean(axis=0), 0, atol=1e-4)  # centred on the fitting texts
    variances = reduced.var(axis=0)
    np.testing.assert_allclose(variances, eigenvalues[:16], rtol=1e-3, atol=1e-6)  # the top 16 directions, in order
    for before, module in ((backbone, tiny_encoder.backbone), (full, tiny_encoder.heads["full"])):
        assert all(torch.equal(before[name], tensor) for name, tensor in module.state_dict().items())
    assert all(torch.equal(d8[name], tensor) for name, tensor in tiny_encoder.heads["d8"].state_dict().items())


def test_bad_requests_are_named(tiny_encoder) -> None:
    with pytest.raises(ValueError, match=r"no reduced head named \['d99'\]"):
        fit_reduced_heads(tiny_encoder, _texts(40), ["d99"], show_progress=False)
    with pytest.raises(ValueError, match="needs at least 16 texts, got 5"):
        fit_reduced_heads(tiny_encoder, _texts(5), show_progress=False)
    del tiny_encoder.heads["d16"], tiny_encoder.heads["d8"]
    with pytest.raises(ValueError, match="reduced heads to refit"):
        fit_reduced_heads(tiny_encoder, _texts(40), show_progress=False)


def test_fit_on_file_saves_a_model_and_a_record(tiny_encoder, tmp_path) -> None:
    saved = tiny_encoder.save(tmp_path / "model")
    corpus = tmp_path / "corpus.jsonl"
    rows = [{"text": text, "source": "medline" if i % 2 else "tweets"} for i, text in enumerate(_texts(80))]
    corpus.write_text("\n".join(json.dumps(row) for row in rows))
    record = fit_heads_on_file(saved, corpus, tmp_path / "fitted", source="medline", max_texts=30)
    assert record["documents"] == 30 and record["heads"] == {"d16": 16, "d8": 8} and record["source"] == "medline"
    fitted = load_encoder(tmp_path / "fitted")
    assert json.loads((tmp_path / "fitted" / FIT_RECORD).read_text()) == record
    texts = _texts(4, seed=1)
    np.testing.assert_allclose(fitted.encode(texts, dim=48), tiny_encoder.encode(texts, dim=48), atol=1e-6)
    assert not np.allclose(fitted.encode(texts, dim=16), tiny_encoder.encode(texts, dim=16), atol=1e-3)
    assert fitted.fingerprint() != tiny_encoder.fingerprint()  # stores built with the old heads ask for a rebuild


def test_a_refitted_copy_of_a_gemma_student_carries_its_card_and_terms(tiny_encoder, tmp_path) -> None:
    recipe = {"name": "sota-nb", "student": "minilm-l6", "teachers": ["embeddinggemma-300m", "mpnet-base"]}
    tiny_encoder.config.extra[RECIPE_KEY] = recipe
    saved = tiny_encoder.save(tmp_path / "model")
    corpus = tmp_path / "docs.txt"
    corpus.write_text("\n\n".join(_texts(40)))
    fit_heads_on_file(saved, corpus, tmp_path / "fitted")
    card = (tmp_path / "fitted" / CARD_FILE).read_text()
    assert card.startswith("# fitted\n") and "`sota-nb` recipe" in card and "Heads: full, d16, d8." in card
    assert "Gemma Terms of Use" in card and "Prohibited Use Policy" in card
    tiny_encoder.config.extra.pop(RECIPE_KEY)
    fit_heads_on_file(tiny_encoder.save(tmp_path / "plain"), corpus, tmp_path / "plain-fitted")
    assert not (tmp_path / "plain-fitted" / CARD_FILE).exists()  # no recipe recorded: no card made up


def test_fit_on_file_refuses_what_it_cannot_use_and_keeps_other_files(tiny_encoder, tmp_path) -> None:
    saved = tiny_encoder.save(tmp_path / "model")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    corpus = tmp_path / "docs.txt"
    corpus.write_text("\n\n".join(_texts(40)))
    with pytest.raises(ValueError, match="busy: exists and is not a saved model"):
        fit_heads_on_file(saved, corpus, tmp_path / "busy")
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"
    with pytest.raises(CorpusFormatError, match=r"missing\.jsonl: no such corpus file"):
        fit_heads_on_file(saved, tmp_path / "missing.jsonl", tmp_path / "out")
    with pytest.raises(ValueError, match="no documents with source 'medline'"):
        fit_heads_on_file(saved, corpus, tmp_path / "out", source="medline")
    assert not (tmp_path / "out").exists()


def test_cli_fit_heads(tiny_encoder, tmp_path) -> None:
    from typer.testing import CliRunner

    from jasper_rag.cli import app

    saved = tiny_encoder.save(tmp_path / "model")
    corpus = tmp_path / "docs.txt"
    corpus.write_text("\n\n".join(_texts(40)))
    runner = CliRunner()
    command = ["fit-heads", str(saved), "--texts", str(corpus)]
    done = runner.invoke(app, [*command, "--to", str(tmp_path / "fitted"), "--heads", "d8"])
    assert done.exit_code == 0, done.output
    assert "refitted d8 on 40 documents" in done.output
    failed = runner.invoke(app, [*command, "--to", str(tmp_path / "x"), "--heads", "d3"])
    assert failed.exit_code == 1 and "fit-heads failed: no reduced head named ['d3']" in failed.output
    assert "Traceback" not in failed.output
