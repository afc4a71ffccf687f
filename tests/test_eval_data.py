"""Eval readers: BEIR folders and STS Benchmark files, with clear errors on bad input.

Also holds the tiny data sets the other eval tests use (``write_beir``, ``write_sts``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from jasper_rag.eval.data import EVAL_FILES, EvalDataError, is_beir_folder, load_beir, load_sts_pairs
from jasper_rag.eval.tasks import load_task

TINY_DOCS = {
    "d1": ("Cats", "the cat sat on the mat"),
    "d2": ("", "the dog ran on the road"),
    "d3": ("Proteins", "protein in cells"),
    "d4": ("Paris", "paris is the capital of france"),
}
TINY_QUERIES = {"q1": "cat mat", "q2": "dog road", "q3": "protein cells", "q4": "capital france", "q9": "unjudged"}
TINY_QRELS = [("q1", "d1", 1), ("q2", "d2", 1), ("q3", "d3", 2), ("q4", "d4", 1), ("q4", "d1", 0)]
TINY_STS = [
    (5.0, "the cat sat on the mat", "a cat sat on a mat"),
    (4.2, "the dog ran on the road", "a dog ran on a road"),
    (4.6, "paris is the capital of france", "the capital of france is paris"),
    (4.0, "protein in cells", "cells and protein"),
    (1.0, "the cat sat on the mat", "the dog ran on the road"),
    (0.0, "music", "protein in cells"),
    (2.0, 'water "fire" earth', "earth water tree"),
]


def write_beir(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    docs = [{"_id": i, "title": title, "text": text} for i, (title, text) in TINY_DOCS.items()]
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(doc) for doc in docs) + "\n")
    queries = [{"_id": i, "text": text} for i, text in TINY_QUERIES.items()]
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(query) for query in queries) + "\n")
    lines = ["query-id\tcorpus-id\tscore", *(f"{q}\t{d}\t{s}" for q, d, s in TINY_QRELS)]
    (folder / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n")
    return folder


def write_sts(path: Path) -> Path:
    lines = [f"main-captions\tMSRvid\t2012test\t{n:04d}\t{gold}\t{a}\t{b}" for n, (gold, a, b) in enumerate(TINY_STS)]
    lines[1] += "\textra\tcolumns"  # some real lines carry trailing columns
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_eval_folder(root: Path) -> Path:
    """A complete, tiny eval folder in the layout `jasper-rag eval-data` provides (``EVAL_FILES``)."""
    write_beir(root / "scifact")
    (root / "stsbenchmark").mkdir(parents=True)
    write_sts(root / "stsbenchmark" / "sts-test.csv")
    dev = write_sts(root / "stsbenchmark" / "sts-dev.csv")
    dev.write_text(dev.read_text(encoding="utf-8").replace("2012test", "2012dev"), encoding="utf-8")
    (root / "stsbenchmark" / "LICENSE.txt").write_text("Notes on datasets and licenses: tiny test copy.\n")
    return root


def test_beir_folder_is_read_like_mteb(tmp_path: Path) -> None:
    data = load_beir(write_beir(tmp_path / "tiny"))
    assert is_beir_folder(tmp_path / "tiny")
    assert data.corpus["d1"] == "Cats the cat sat on the mat"
    assert data.corpus["d2"] == "the dog ran on the road"  # empty title: no leading space
    assert data.qrels["q3"] == {"d3": 2}
    assert data.qrels["q4"] == {"d4": 1, "d1": 0}
    assert "q9" in data.queries and "q9" not in data.qrels


def test_sts_file_split_on_tabs_only(tmp_path: Path) -> None:
    pairs = load_sts_pairs(write_sts(tmp_path / "sts.csv"))
    assert len(pairs) == len(TINY_STS)
    assert pairs[1].second == "a dog ran on a road"  # trailing extra columns ignored
    assert pairs[6].first == 'water "fire" earth'  # quotes kept as text
    assert pairs[0].gold == 5.0


@pytest.mark.parametrize(
    ("line", "message"),
    [("a\tb\tc", "expected at least 7"), ("g\tf\ty\t1\tfive\ts1\ts2", "score column 'five' is not a number")],
)
def test_bad_sts_lines_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("g\tf\ty\t1\t3.0\tok\tok\n" + line + "\n")
    with pytest.raises(EvalDataError, match=rf"bad\.csv:2: {message}"):
        load_sts_pairs(path)


def test_bad_beir_files_name_file_and_line(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "tiny")
    (folder / "corpus.jsonl").write_text('{"_id": "d1", "text": "ok"}\n{not json\n')
    with pytest.raises(EvalDataError, match=r"corpus\.jsonl, line 2: invalid JSON"):
        load_beir(folder)

    folder = write_beir(tmp_path / "tiny2")
    with (folder / "qrels" / "test.tsv").open("a") as handle:
        handle.write("q404\td1\t1\n")
    with pytest.raises(EvalDataError, match=r"query ids missing .*q404"):
        load_beir(folder)

    folder = write_beir(tmp_path / "tiny3")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\n")
    with pytest.raises(EvalDataError, match=r"test\.tsv:2: expected"):
        load_beir(folder)

    with pytest.raises(EvalDataError, match="file not found"):
        load_beir(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("task", "missing"),
    [("scifact", "scifact/corpus.jsonl"), ("stsbenchmark", "stsbenchmark/sts-test.csv"), ("faq", "sts-test.csv")],
)
def test_missing_eval_data_names_the_folder_and_the_fix(tmp_path: Path, task: str, missing: str) -> None:
    eval_dir = tmp_path / "no-eval"
    with pytest.raises(EvalDataError) as caught:
        load_task(task, eval_dir)
    message = str(caught.value)
    assert f"no eval data in {eval_dir}" in message and missing in message
    assert message.endswith("run jasper-rag eval-data (or set JASPER_EVAL_DIR)")


def test_partial_eval_folder_names_the_missing_file(tmp_path: Path) -> None:
    eval_dir = write_eval_folder(tmp_path / "eval")
    assert all((eval_dir / name).is_file() for name in EVAL_FILES)
    (eval_dir / "scifact" / "qrels" / "test.tsv").unlink()
    with pytest.raises(EvalDataError, match=r"\(scifact/qrels/test\.tsv not found\): run jasper-rag eval-data"):
        load_task("scifact", eval_dir)
    (eval_dir / "stsbenchmark" / "sts-dev.csv").unlink()
    with pytest.raises(EvalDataError, match=re.escape(f"no eval data in {eval_dir} (stsbenchmark/sts-dev.csv not")):
        load_sts_pairs(eval_dir / "stsbenchmark" / "sts-dev.csv")  # what calibrate-faq reads by default
