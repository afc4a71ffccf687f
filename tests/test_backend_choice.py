"""``JASPER_BACKEND=auto``: the faster of torch and fp32 ONNX, timed once per model and machine, then recorded."""

from __future__ import annotations

import json

import pytest

from jasper_rag import backend_choice
from jasper_rag.backend_choice import CANDIDATES, choice_file, choose_backend, timing_texts
from jasper_rag.backends import KEEPS_IDENTITY


def fake_rates(rates: dict[str, float]):
    def rate(encoder, texts, batch_size) -> float:
        return rates[encoder.backend]

    return rate


def test_candidates_are_the_backends_that_keep_the_vectors() -> None:
    assert set(CANDIDATES) == set(KEEPS_IDENTITY)


def test_timing_texts_are_packaged_short_texts_and_passages() -> None:
    texts = timing_texts()
    assert len(texts) == backend_choice.SHORT_TEXTS + backend_choice.PASSAGES
    assert max(len(text.split()) for text in texts) > 100 > min(len(text.split()) for text in texts)


@pytest.mark.parametrize("faster", CANDIDATES)
def test_the_faster_backend_is_chosen_recorded_and_read_back(tiny_encoder, tmp_path, monkeypatch, faster) -> None:
    slower = next(name for name in CANDIDATES if name != faster)
    monkeypatch.setattr(backend_choice, "texts_per_second", fake_rates({faster: 20.0, slower: 10.0}))
    assert choose_backend(tiny_encoder, tmp_path) == faster
    assert tiny_encoder.backend == "torch"  # left on the backend it had
    record = json.loads(choice_file(tiny_encoder, tmp_path).read_text())
    assert record["backend"] == faster and record["texts_per_s"] == {faster: 20.0, slower: 10.0}
    monkeypatch.setattr(backend_choice, "texts_per_second", lambda *args: pytest.fail("timed again"))
    assert choose_backend(tiny_encoder, tmp_path) == faster


def test_an_unreadable_record_is_timed_again(tiny_encoder, tmp_path, monkeypatch) -> None:
    path = choice_file(tiny_encoder, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text('{"backend": "onnx-int8"}')  # not a candidate: never trusted
    monkeypatch.setattr(backend_choice, "texts_per_second", fake_rates({"torch": 5.0, "onnx": 1.0}))
    assert choose_backend(tiny_encoder, tmp_path) == "torch"
    assert json.loads(path.read_text())["backend"] == "torch"


def test_auto_resolves_to_the_choice_and_other_weights_are_timed_apart(tiny_encoder, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(backend_choice, "texts_per_second", fake_rates({"torch": 1.0, "onnx": 3.0}))
    tiny_encoder.use_backend("auto", tmp_path)
    assert tiny_encoder.backend == "onnx"
    before = choice_file(tiny_encoder, tmp_path)
    with pytest.raises(ValueError, match="must be one of torch, onnx, onnx-int8, auto"):
        tiny_encoder.use_backend("fast", tmp_path)
    tiny_encoder.use_backend("torch")
    tiny_encoder.heads["full"].bias.data += 1.0  # new weights: their own record
    assert choice_file(tiny_encoder, tmp_path) != before


def test_a_cache_that_cannot_be_written_still_gives_the_choice(tiny_encoder, tmp_path, monkeypatch, caplog) -> None:
    def full_disk(path, write) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(backend_choice, "atomic_write", full_disk)
    monkeypatch.setattr(backend_choice, "texts_per_second", fake_rates({"torch": 2.0, "onnx": 1.0}))
    assert choose_backend(tiny_encoder, tmp_path) == "torch"
    assert "could not record the backend choice" in caplog.text and not choice_file(tiny_encoder, tmp_path).exists()
