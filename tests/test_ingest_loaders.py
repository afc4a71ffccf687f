"""Loaders: every file type reads, every bad input is refused with its reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from jasper_rag.ingest.loaders import FaqContent, ImageContent, LoadError, TextContent, file_type
from jasper_rag.ingest.sample_build import SAMPLE_DIR, text_pdf
from tests.ingest_support import empty_pdf, encrypted_pdf, png_bytes, write_bad_files


def load(name: str, data: bytes):
    path = Path(name)
    return file_type(path).load(path, data)


@pytest.mark.parametrize(
    ("name", "kind", "fragment"),
    [
        ("distillation.md", TextContent, "relative similarity loss"),
        ("vector-search.txt", TextContent, "inner product"),
        ("matryoshka.rst", TextContent, "Funnel search"),
        ("rag-primer.html", TextContent, "Retrieve: embed the user's question"),
        ("jasper-overview.pdf", TextContent, "last three encoder layers"),
        ("faq.csv", FaqContent, "PostgreSQL"),
        ("faq-search.jsonl", FaqContent, "cosine"),
        ("images/pipeline.png", ImageContent, ""),
    ],
)
def test_every_sample_file_type_loads(name, kind, fragment):
    content = load(name, (SAMPLE_DIR / name).read_bytes())
    assert isinstance(content, kind)
    if isinstance(content, TextContent):
        assert fragment in " ".join(page.text for page in content.pages)
    elif isinstance(content, FaqContent):
        assert any(fragment in q + a for q, a in content.pairs)


def test_pdf_pages_are_numbered_and_html_drops_scripts():
    pdf = load("x.pdf", text_pdf(["first page", "second page"]))
    assert [(p.number, p.text.strip()) for p in pdf.pages] == [(1, "first page"), (2, "second page")]
    html = load("x.html", (SAMPLE_DIR / "rag-primer.html").read_bytes())
    assert "console.log" not in html.pages[0].text and "font-family" not in html.pages[0].text


def test_text_encodings_with_boms_are_read():
    assert load("a.txt", "\ufeffcafé".encode()).pages[0].text == "café"
    assert load("a.txt", "café\r\nau lait".encode("utf-16")).pages[0].text == "café\nau lait"


def test_faq_headers_are_case_insensitive_and_rows_must_be_complete():
    content = load("f.csv", b"Answer,Question\nyes,is it?\n")
    assert content.pairs == [("is it?", "yes")]
    with pytest.raises(LoadError, match="row 3"):
        load("f.csv", b"question,answer\nq1,a1\nq2,\n")


def test_owner_only_encrypted_pdf_opens_but_a_password_protected_one_is_refused():
    assert load("x.pdf", encrypted_pdf(password="")).pages[0].text.startswith("a secret page")
    with pytest.raises(LoadError, match="encrypted PDF"):
        load("x.pdf", encrypted_pdf())
    with pytest.raises(LoadError, match="empty PDF"):
        load("x.pdf", empty_pdf())


def test_every_bad_input_has_its_reason(tmp_path):
    reasons = write_bad_files(tmp_path)
    for name, reason in reasons.items():
        if name.startswith(("loop", "zero", "data.")):
            continue  # refused before loading (pipeline tests)
        with pytest.raises(LoadError, match=reason):
            load(name, (tmp_path / name).read_bytes())


def test_decompression_bombs_are_refused(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    assert isinstance(load("ok.png", png_bytes((20, 20))), ImageContent)
    with pytest.raises(LoadError, match="decompression bomb"):
        load("big.png", png_bytes((100, 100)))


def test_unsupported_extensions_have_no_loader():
    assert file_type(Path("a.xyz")) is None and file_type(Path("A.PDF")).name == "pdf"


def test_csv_field_limit_holds_whatever_the_process_wide_csv_limit(tmp_path) -> None:
    import csv
    import sys

    from jasper_rag.ingest.loaders import load_faq_csv

    previous = csv.field_size_limit(sys.maxsize)  # as another library might have done
    try:
        with pytest.raises(LoadError, match="malformed CSV"):
            load_faq_csv(tmp_path / "faq.csv", b"question,answer\nwhy," + b"a" * 200_000 + b"\n")
    finally:
        csv.field_size_limit(previous)


MARKUP = ("**", "*", "`", "#", "](", "===", "---", "::", ".. ", "<", ">\n")


def texts(name: str) -> dict[str | None, str]:
    """Heading path -> text of each page of a sample file."""
    return {page.heading: page.text for page in load(name, (SAMPLE_DIR / name).read_bytes()).pages}


def assert_no_markup(pages: dict[str | None, str]) -> None:
    for text in pages.values():
        assert not [mark for mark in MARKUP if mark in text.replace(" > ", " ")], text


def test_sample_markdown_is_plain_text_by_section():
    pages = texts("distillation.md")
    assert list(pages) == [
        "Distilling embedding models",
        "Distilling embedding models > Several teachers at once",
        "Distilling embedding models > Three losses",
        "Distilling embedding models > Stages",
    ]
    assert_no_markup(pages)
    losses = pages["Distilling embedding models > Three losses"]
    assert losses.startswith("Distilling embedding models > Three losses\n\nThe student is trained with three losses")
    assert "\n1. The cosine loss pulls each student vector towards the teacher vector of the same text.\n" in losses
    assert "\n3. The relative similarity loss only asks that the student ranks pairs" in losses
    assert (
        "trains a small student model to reproduce the vectors of one or several large teacher models."
        in (pages["Distilling embedding models"])
    )
    table = texts("README.md")["Sample corpus"]
    assert "\nfile | type | what it is about\ndistillation.md | Markdown | how a small student learns" in table
    assert "for the make ingest demo" in table


def test_sample_rst_is_plain_text_by_section():
    pages = texts("matryoshka.rst")
    assert list(pages) == ["Reduced-dimension heads", "Reduced-dimension heads > Funnel search"]
    assert_no_markup(pages)
    funnel = pages["Reduced-dimension heads > Funnel search"]
    assert funnel.startswith("Reduced-dimension heads > Funnel search\n\nReduced heads make a two-step search")
    assert "\nre-score only those candidates with their full-size vectors;\nreturn the best ten.\n" in funnel


def test_sample_html_is_plain_text_by_section():
    pages = texts("rag-primer.html")
    title = "Retrieval-augmented generation in one page"
    assert list(pages) == [title, f"{title} > The three steps", f"{title} > Why citations matter"]
    assert_no_markup(pages)
    steps = pages[f"{title} > The three steps"]
    assert "\nRetrieve: embed the user's question with the same model and find the nearest chunks.\n" in steps
    assert pages[title] == f"{title}\n\n" + (
        "A language model only knows what it saw during training. Retrieval-augmented generation (RAG) gives "
        "it fresh, private knowledge: before answering, the application searches a document collection and "
        "puts the best passages into the prompt."
    )


def test_plain_text_stays_as_it_is_and_markup_in_it_is_text():
    data = (SAMPLE_DIR / "vector-search.txt").read_bytes()
    (page,) = load("vector-search.txt", data).pages
    assert page.text == data.decode() and page.heading is None
    (page,) = load("notes.txt", b"# not a heading\n**kept** <b>as is</b>").pages
    assert page.text == "# not a heading\n**kept** <b>as is</b>"


def test_html_in_markdown_and_rst_is_text_not_markup():
    (page,) = load("a.md", b"A <script>alert(1)</script> tag.").pages
    assert page.text == "A <script>alert(1)</script> tag."
    (page,) = load("a.rst", b"A <script>alert(1)</script> tag.").pages
    assert page.text == "A <script>alert(1)</script> tag."


def test_markup_without_text_is_refused():
    for name, data in [("a.md", b"---\n\n***\n"), ("a.rst", b"====\n\n.. a comment\n"), ("a.html", b"<p> </p>")]:
        with pytest.raises(LoadError, match="empty"):
            load(name, data)
