"""The Streamlit app, tab by tab, through ``streamlit.testing.v1.AppTest`` on a tiny model and a tmp store."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.app_support import APP, DOCS, FAQ_THRESHOLD, configure, ingest_corpus, save_tiny_model, write_corpus
from tests.ingest_support import png_bytes

TIMEOUT = 180  # seconds per script run: the first run imports torch on a busy 2-core machine


pytestmark = pytest.mark.usefixtures("one_torch_thread", "fresh_settings")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def ready(tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ingested tmp store; returns the corpus folder."""
    configure(monkeypatch, tmp_path, tiny_model)
    corpus = write_corpus(tmp_path / "docs")
    ingest_corpus(tiny_model, corpus)
    return corpus


def run_app() -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    app.run()
    assert not app.exception, app.exception
    return app


def markdown_with(app: AppTest, marker: str) -> list[str]:
    return [element.value for element in app.markdown if marker in element.value]


def test_search_returns_cards_with_source_score_and_highlight(ready: Path) -> None:
    app = run_app()
    assert not markdown_with(app, 'class="jr-card')
    app.text_input(key="query").input(DOCS["cells.txt"]).run()
    assert not app.exception, app.exception
    cards = markdown_with(app, 'class="jr-card')
    assert len(cards) == 5  # five entries in the store, k=10
    top = cards[0]
    assert "cells.txt" in top and "<mark>protein</mark>" in top and "1.000" in top
    stats = markdown_with(app, 'class="jr-stats"')[0]
    assert "5 results" in stats and " ms" in stats and "48-d head" in stats


def test_search_options_head_k_kind_type_and_funnel(ready: Path) -> None:
    app = run_app()
    app.text_input(key="query").input("the capital of france")
    app.selectbox(key="dim").set_value(16)
    app.selectbox(key="k").set_value(5)
    app.multiselect(key="kinds").set_value(["chunk"])
    app.multiselect(key="types").set_value(["markdown"])
    app.run()
    assert not app.exception, app.exception
    cards = markdown_with(app, 'class="jr-card')
    assert len(cards) == 1 and "paris.md" in cards[0]
    assert "16-d head · exact search" in markdown_with(app, 'class="jr-stats"')[0]
    app.toggle(key="funnel").set_value(True).run()
    assert "16-d head · funnel search" in markdown_with(app, 'class="jr-stats"')[0]


def test_search_modes_and_folder_filter_show_their_evidence(ready: Path) -> None:
    app = run_app()
    app.text_input(key="query").input("capital of france")
    app.selectbox(key="mode").set_value("lexical").run()
    assert not app.exception, app.exception
    cards = markdown_with(app, 'class="jr-card')
    assert "lexical (words)" in markdown_with(app, 'class="jr-stats"')[0]
    assert cards and "paris" in cards[0] and "BM25" in cards[0] and "capital" in cards[0]
    app.selectbox(key="mode").set_value("hybrid").run()
    assert "hybrid (words + meaning)" in markdown_with(app, 'class="jr-stats"')[0]
    assert "by meaning" in markdown_with(app, 'class="jr-card')[0]
    app.text_input(key="folder").input("/nowhere/else").run()
    assert not app.exception and not markdown_with(app, 'class="jr-card')
    assert any("No results" in info.value for info in app.info)


def test_image_search_is_explained_when_the_model_has_no_vision_tower(ready: Path) -> None:
    app = run_app()
    assert any("vision tower" in caption.value for caption in app.caption)
    assert "image_query" not in [widget.key for widget in app.file_uploader]


def test_search_by_image_with_a_vision_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = save_tiny_model(tmp_path / "vision", vision=True)
    configure(monkeypatch, tmp_path, model)
    corpus = write_corpus(tmp_path / "docs")
    (corpus / "red-square.png").write_bytes(png_bytes((32, 32)))
    ingest_corpus(model, corpus)
    app = run_app()
    app.file_uploader(key="image_query").upload("query.png", png_bytes((32, 32)), "image/png").run()
    assert not app.exception, app.exception
    assert "for the uploaded image" in markdown_with(app, 'class="jr-stats"')[0]
    top = markdown_with(app, 'class="jr-card')[0]
    assert "red-square.png" in top and "1.000" in top and 'src="data:image/png;base64,' in top
    app.file_uploader(key="image_query").clear().upload("bad.png", b"not an image", "image/png").run()
    assert not app.exception and "not a readable image" in app.error[0].value


def test_faq_answers_and_abstains(ready: Path) -> None:
    app = run_app()
    app.text_input(key="faq_question").input("what is the capital of france").run()
    assert not app.exception, app.exception
    answer = markdown_with(app, "jr-faq-card")
    assert len(answer) == 1 and "paris is the capital" in answer[0] and "Answer" in answer[0]
    app.text_input(key="faq_question").input("apple banana fruit tree").run()
    assert any("No confident match" in warning.value for warning in app.warning)
    assert len(markdown_with(app, "jr-faq-card")) == 2  # both stored questions as the nearest candidates


def test_uncalibrated_model_shows_candidates_and_takes_a_threshold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = save_tiny_model(tmp_path / "plain", calibrated=False)
    configure(monkeypatch, tmp_path, model)
    ingest_corpus(model, write_corpus(tmp_path / "docs"))
    app = run_app()
    assert any("no calibrated FAQ threshold" in warning.value for warning in app.warning)
    app.text_input(key="faq_question").input("is the dog fast").run()
    assert len(markdown_with(app, "jr-faq-card")) == 2 and not markdown_with(app, "Answer</span>")
    app.number_input(key="faq_threshold").set_value(FAQ_THRESHOLD).run()
    assert "yes the dog is fast" in markdown_with(app, "Answer</span>")[0]


def test_upload_is_ingested_and_searchable(ready: Path, tmp_path: Path) -> None:
    app = run_app()
    uploader = app.file_uploader(key="uploads")
    uploader.upload("../../Fruit notes.TXT", b"apple and banana fruit on the tree", "text/plain")
    app.run()
    app.button(key="ingest").click().run()
    assert not app.exception, app.exception
    rows = app.session_state["ingest_report"]["rows"]
    assert [(row["file"], row["status"], row["entries"]) for row in rows] == [("../../Fruit notes.TXT", "ingested", 1)]
    saved = list((tmp_path / "uploads").iterdir())
    assert len(saved) == 1 and saved[0].name.startswith("fruit-notes-") and saved[0].suffix == ".txt"
    assert any("Every file went in" in message.value for message in app.success)
    assert "**5** files" in [element.value for element in app.sidebar.markdown]  # 4 + 1, redrawn after the ingest
    app.text_input(key="query").input("apple and banana fruit on the tree").run()
    assert "fruit-notes-" in markdown_with(app, 'class="jr-card')[0]


def test_bad_uploads_are_refused_with_reasons(
    ready: Path, tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, tmp_path, tiny_model, JASPER_INGEST_MAX_FILE_MB="0.001")  # 1 KiB
    app = run_app()
    for name, data in {
        "empty.txt": b"",
        "big.txt": b"the cat " * 200,
        "tool.exe": b"MZ binary",
        "broken.pdf": b"%PDF-1.4\nnot a pdf at all",
        "good.txt": b"the red car on the road",
    }.items():
        app.file_uploader(key="uploads").upload(name, data)
    app.run()
    assert not app.exception, app.exception
    app.button(key="ingest").click().run()
    assert not app.exception, app.exception
    rows = {row["file"]: row for row in app.session_state["ingest_report"]["rows"]}
    assert rows["empty.txt"]["status"] == "refused" and "empty" in rows["empty.txt"]["reason"]
    assert rows["big.txt"]["status"] == "refused" and "too large" in rows["big.txt"]["reason"]
    assert rows["tool.exe"]["status"] == "refused" and "unsupported file type '.exe'" in rows["tool.exe"]["reason"]
    assert rows["broken.pdf"]["status"] == "failed" and "PDF" in rows["broken.pdf"]["reason"]
    assert rows["good.txt"]["status"] == "ingested"
    assert any("did not go in" in message.value for message in app.error)
    assert sorted(path.suffix for path in (tmp_path / "uploads").iterdir()) == [".txt"]  # the failed PDF is deleted


def test_about_shows_model_heads_counts_indexes_and_eval_table(ready: Path, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "eval.md").write_text("# Evaluation\n\ntext\n\n| model | dim |\n|---|---:|\n| tiny | 48 |\n\nafter\n")
    app = run_app()
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics == {"Text chunks": "3", "FAQ entries": "2", "Files": "4"}
    about = " ".join(element.value for element in app.markdown)
    assert "`full` 48-d, `d16` 16-d, `d8` 8-d" in about and "| tiny | 48 |" in about
    index_table = app.dataframe[0].value
    assert len(index_table) == 6 and set(index_table["dim"]) == {48, 16, 8}


def test_empty_index_gives_guidance_then_sees_an_outside_ingest_without_restart(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, tmp_path, tiny_model)
    app = run_app()
    assert any("index is empty" in info.value for info in app.info)
    app.text_input(key="query").input(DOCS["paris.md"]).run()
    assert not app.exception and not markdown_with(app, 'class="jr-card')
    ingest_corpus(tiny_model, write_corpus(tmp_path / "docs"))  # e.g. `make ingest` in a terminal
    app.run()
    assert "paris.md" in markdown_with(app, 'class="jr-card')[0]
    app.button(key="reload").click().run()
    assert not app.exception and "paris.md" in markdown_with(app, 'class="jr-card')[0]


def test_missing_model_gives_guidance_not_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch, tmp_path, tmp_path / "models" / "jasper-quick")
    app = run_app()
    assert "make train" in app.error[0].value and "No model at" in app.error[0].value
    assert not app.tabs
