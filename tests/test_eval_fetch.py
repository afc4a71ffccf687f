"""`jasper-rag eval-data`: local copies (folder, .zip, .tar.gz) byte for byte, archive safety, idempotence,
the offline message, and the conversion of MTEB's Hub files (tiny synthetic copies; the Hub itself is
not reachable here)."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jasper_rag.cli import app
from jasper_rag.config import get_settings
from jasper_rag.eval import fetch
from jasper_rag.eval.data import EVAL_FILES, load_sts_pairs
from jasper_rag.eval.fetch import EvalFetchError, fill_eval_dir
from jasper_rag.eval.tasks import load_task
from tests.test_eval_data import TINY_DOCS, TINY_QRELS, TINY_QUERIES, TINY_STS, write_eval_folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def assert_same_tasks(copy: Path, source: Path) -> None:
    """Byte-identical files, and the loaders see the same data (so the MTEB scores are identical)."""
    for name in EVAL_FILES:
        assert (copy / name).read_bytes() == (source / name).read_bytes(), name
    assert load_task("scifact", copy).data == load_task("scifact", source).data
    assert load_task("stsbenchmark", copy).pairs == load_task("stsbenchmark", source).pairs
    faq_copy, faq_source = load_task("faq", copy), load_task("faq", source)
    assert faq_copy.matches == faq_source.matches and faq_copy.candidates == faq_source.candidates


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_eval_folder(tmp_path / "source" / "eval")


def test_copy_from_folder_is_byte_identical_and_leaves_the_source_alone(tmp_path: Path, source: Path) -> None:
    (source / "README.md").write_text("extra files are not copied\n")
    before = snapshot(source)
    result = fill_eval_dir(tmp_path / "cache" / "eval", source)
    assert result.fetched and result.counts["SciFact documents"] == len(TINY_DOCS)
    assert result.counts["STSB test pairs"] == len(TINY_STS)
    assert_same_tasks(tmp_path / "cache" / "eval", source)
    assert snapshot(source) == before
    assert sorted(snapshot(tmp_path / "cache" / "eval")) == sorted(EVAL_FILES)  # no temp folder left behind


def _zip(folder: Path, archive: Path, prefix: str = "eval") -> Path:
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(folder.rglob("*")):
            bundle.write(path, f"{prefix}/{path.relative_to(folder)}")
    return archive


def _tar(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as bundle:
        for name in ("scifact", "stsbenchmark"):  # the task folders at the archive's top
            bundle.add(folder / name, name)
    return archive


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_copy_from_archive(tmp_path: Path, source: Path, kind: str) -> None:
    archive = _zip(source, tmp_path / "eval.zip") if kind == "zip" else _tar(source, tmp_path / "eval.tar.gz")
    packed = archive.read_bytes()
    target = tmp_path / "cache" / "eval"
    assert fill_eval_dir(target, archive).fetched
    assert_same_tasks(target, source)
    assert archive.read_bytes() == packed
    assert sorted(snapshot(target)) == sorted(EVAL_FILES)


def test_complete_data_is_kept_unless_forced(tmp_path: Path, source: Path) -> None:
    target = tmp_path / "eval"
    fill_eval_dir(target, source)
    (target / "mine").mkdir()  # a BEIR folder of the user's own: never touched
    (target / "mine" / "corpus.jsonl").write_text("{}\n")
    again = fill_eval_dir(target, source)
    assert not again.fetched and "already complete" in again.message()
    (source / "stsbenchmark" / "LICENSE.txt").write_text("changed licence notes\n")
    assert fill_eval_dir(target, source, force=True).fetched
    assert (target / "stsbenchmark" / "LICENSE.txt").read_text() == "changed licence notes\n"
    assert (target / "mine" / "corpus.jsonl").read_text() == "{}\n"


def test_incomplete_data_is_replaced(tmp_path: Path, source: Path) -> None:
    target = tmp_path / "eval"
    fill_eval_dir(target, source)
    (target / "stsbenchmark" / "sts-dev.csv").unlink()
    assert fill_eval_dir(target, source).fetched
    assert_same_tasks(target, source)


def test_a_failed_rename_puts_the_previous_task_folder_back(tmp_path: Path, source: Path, monkeypatch) -> None:
    target = tmp_path / "eval"
    fill_eval_dir(target, source)
    before = snapshot(target)
    real_replace = fetch.os.replace

    def replace(src, dst):
        if Path(src).name == "stsbenchmark" and Path(src).parent.name == "new":
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(fetch.os, "replace", replace)
    with pytest.raises(OSError, match="disk full"):
        fill_eval_dir(target, source, force=True)
    assert snapshot(target) == before


def test_incomplete_source_is_refused_and_the_target_kept(tmp_path: Path, source: Path) -> None:
    target = tmp_path / "eval"
    fill_eval_dir(target, source)
    before = snapshot(target)
    broken = tmp_path / "broken"
    shutil.copytree(source, broken)
    (broken / "scifact" / "queries.jsonl").unlink()
    with pytest.raises(EvalFetchError, match=r"not an eval data folder, missing scifact/queries\.jsonl"):
        fill_eval_dir(target, broken, force=True)
    (broken / "scifact" / "queries.jsonl").write_text('{"_id": "q1", "text": "x"}\n{oops\n')
    with pytest.raises(EvalFetchError, match=r"queries\.jsonl, line 2"):
        fill_eval_dir(target, broken, force=True)
    assert snapshot(target) == before


@pytest.mark.parametrize("member", ["../evil.txt", "eval/../../evil.txt", "/tmp/evil.txt"])
def test_archive_member_outside_the_target_is_refused(tmp_path: Path, source: Path, member: str) -> None:
    archive = _zip(source, tmp_path / "eval.zip")
    with zipfile.ZipFile(archive, "a") as bundle:
        bundle.writestr(member, "escaped")
    target = tmp_path / "work" / "eval"
    with pytest.raises(EvalFetchError, match=r"refused archive member .*outside the target folder"):
        fill_eval_dir(target, archive)
    assert not (tmp_path / "work" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert list(target.iterdir()) == []  # nothing installed, the temp folder removed


def test_tar_links_and_parent_paths_are_refused(tmp_path: Path, source: Path) -> None:
    for name, member in (("dotdot", tarfile.TarInfo("../evil.txt")), ("link", tarfile.TarInfo("scifact/link"))):
        archive = _tar(source, tmp_path / f"{name}.tar.gz")
        with tarfile.open(archive, "r:gz") as old:
            members = [(info, old.extractfile(info).read() if info.isfile() else None) for info in old]
        if name == "link":
            member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
        else:
            member.size = 7
        with tarfile.open(archive, "w:gz") as bundle:
            for info, data in members:
                bundle.addfile(info, io.BytesIO(data) if data is not None else None)
            bundle.addfile(member, io.BytesIO(b"escaped") if member.isfile() else None)
        with pytest.raises(EvalFetchError, match="refused archive member"):
            fill_eval_dir(tmp_path / name / "eval", archive)
    assert not (tmp_path / "dotdot" / "evil.txt").exists()


def test_other_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "eval.rar").write_bytes(b"Rar!")
    with pytest.raises(EvalFetchError, match=r"expected a folder or a \.zip / \.tar\.gz"):
        fill_eval_dir(tmp_path / "eval", tmp_path / "eval.rar")
    with pytest.raises(EvalFetchError, match="no such folder or archive"):
        fill_eval_dir(tmp_path / "eval", tmp_path / "absent")
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(EvalFetchError, match="unreadable archive"):
        fill_eval_dir(tmp_path / "eval", tmp_path / "bad.zip")


# --------------------------------------------------------------------------- the CLI and the offline message
OFFLINE_LINE = (
    "eval-data failed: cannot reach the Hugging Face Hub (offline). Either go online and rerun "
    "(HF_HUB_OFFLINE=0 jasper-rag eval-data), or pass a local copy: jasper-rag eval-data --from PATH "
    "(a folder or .zip/.tar.gz with scifact/ and stsbenchmark/)"
)


@pytest.fixture
def cli_eval_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("JASPER_EVAL_DIR", str(tmp_path / "cache" / "eval"))
    get_settings.cache_clear()
    yield tmp_path / "cache" / "eval"
    get_settings.cache_clear()


def test_cli_offline_fails_with_one_line_naming_both_ways(cli_eval_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(app, ["eval-data"])
    assert result.exit_code == 1
    assert result.output.strip() == OFFLINE_LINE


def test_connection_errors_give_the_same_message(tmp_path: Path, monkeypatch) -> None:
    import requests

    def no_network(dataset):
        raise requests.ConnectionError("Max retries exceeded with url: /api/datasets/mteb/scifact")

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(fetch, "_list_files", no_network)
    with pytest.raises(EvalFetchError) as caught:
        fill_eval_dir(tmp_path / "eval")
    assert f"eval-data failed: {caught.value}" == OFFLINE_LINE
    assert not (tmp_path / "eval" / "scifact").exists()


def test_cli_copies_from_a_folder_and_then_has_nothing_to_do(cli_eval_dir: Path, source: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["eval-data", "--from", str(source)])
    assert first.exit_code == 0, first.output
    assert f"eval data in {cli_eval_dir} from {source}: 4 SciFact documents" in first.output
    assert_same_tasks(cli_eval_dir, source)
    second = runner.invoke(app, ["eval-data", "--from", str(source)])
    assert second.exit_code == 0 and "already complete" in second.output
    bad = runner.invoke(app, ["eval-data", "--from", str(source / "scifact"), "--force"])
    assert bad.exit_code == 1 and bad.output.startswith("eval-data failed:") and "Traceback" not in bad.output


# --------------------------------------------------------------------------- Hub files -> layout
def _jsonl_gz(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)


def fake_hub(root: Path) -> dict[str, Path]:
    """Tiny copies of the two MTEB repositories, in their file formats (float32-ish scores, extra fields)."""
    scifact, stsb = root / "mteb" / "scifact", root / "mteb" / "stsbenchmark-sts"
    (scifact / "qrels").mkdir(parents=True)
    docs = [{"_id": i, "title": t, "text": x, "metadata": {}} for i, (t, x) in TINY_DOCS.items()]
    (scifact / "corpus.jsonl").write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    queries = [{"_id": i, "text": text, "metadata": {}} for i, text in TINY_QUERIES.items()]
    (scifact / "queries.jsonl").write_text("".join(json.dumps(query) + "\n" for query in queries))
    lines = ["query-id\tcorpus-id\tscore", *(f"{q}\t{d}\t{s}" for q, d, s in TINY_QRELS)]
    (scifact / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n")
    (scifact / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td2\t1\n")
    rows = [
        {
            "split": "test",
            "genre": "main-captions",
            "dataset": "MSRvid",
            "year": "2012test",
            "sid": f"{n:04d}",
            "score": gold + 1e-7 if gold else gold,  # float32 noise
            "sentence1": first,
            "sentence2": second,
        }
        for n, (gold, first, second) in enumerate(TINY_STS)
    ]
    _jsonl_gz(stsb / "test.jsonl.gz", rows)
    _jsonl_gz(stsb / "validation.jsonl.gz", [{**row, "split": "dev"} for row in rows])
    _jsonl_gz(stsb / "train.jsonl.gz", rows[:2])
    return {"mteb/scifact": scifact, "mteb/stsbenchmark-sts": stsb}


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    repos = fake_hub(tmp_path / "hub")
    downloaded: list[str] = []

    def list_files(dataset):
        return [str(path.relative_to(repos[dataset.repo_id])) for path in repos[dataset.repo_id].rglob("*.*")]

    def download(dataset, filename, cache_dir):
        downloaded.append(f"{dataset.repo_id}/{filename}")
        return repos[dataset.repo_id] / filename

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(fetch, "_list_files", list_files)
    monkeypatch.setattr(fetch, "_download", download)
    return downloaded


def test_hub_files_are_converted_to_the_layout(tmp_path: Path, hub: list[str]) -> None:
    target = tmp_path / "eval"
    result = fill_eval_dir(target)
    assert result.fetched and "Hugging Face Hub" in result.source
    assert sorted(hub) == [
        "mteb/scifact/corpus.jsonl",
        "mteb/scifact/qrels/test.tsv",
        "mteb/scifact/queries.jsonl",
        "mteb/stsbenchmark-sts/test.jsonl.gz",
        "mteb/stsbenchmark-sts/validation.jsonl.gz",
    ]
    expected = write_eval_folder(tmp_path / "expected")  # the same tiny sets in the original formats
    assert load_task("scifact", target).data == load_task("scifact", expected).data
    assert load_task("stsbenchmark", target).pairs == load_task("stsbenchmark", expected).pairs
    first = (target / "stsbenchmark" / "sts-test.csv").read_text().splitlines()[0]
    assert first == "main-captions\tMSRvid\t2012test\t0000\t5.000\tthe cat sat on the mat\ta cat sat on a mat"
    assert (target / "scifact" / "qrels" / "test.tsv").read_text().splitlines()[:2] == [
        "query-id\tcorpus-id\tscore",
        "q1\td1\t1",
    ]
    assert "mteb/stsbenchmark-sts" in (target / "stsbenchmark" / "LICENSE.txt").read_text()


def test_sts_cells_never_break_the_tab_format(tmp_path: Path) -> None:
    rows = [{"score": 3.25, "sentence1": "a\tb", "sentence2": "line one\nline two"}]
    assert fetch.write_sts(rows, tmp_path / "sts.csv") == 1
    pairs = load_sts_pairs(tmp_path / "sts.csv")
    assert (pairs[0].first, pairs[0].second, pairs[0].gold) == ("a b", "line one line two", 3.25)


def test_parquet_and_jsonl_qrels_are_read(tmp_path: Path) -> None:
    pyarrow = pytest.importorskip("pyarrow")
    import pyarrow.parquet as parquet

    table = pyarrow.table({"query-id": ["q1", "q2"], "corpus-id": ["d1", "d2"], "score": [1.0, 2.0]})
    parquet.write_table(table, tmp_path / "test-00000-of-00001.parquet")
    (tmp_path / "test.jsonl").write_text(json.dumps({"query-id": "q3", "corpus-id": "d3", "score": 1}) + "\n")
    records = fetch.read_records([tmp_path / "test-00000-of-00001.parquet", tmp_path / "test.jsonl"])
    assert fetch.write_qrels(records, tmp_path / "qrels" / "test.tsv") == 3
    lines = (tmp_path / "qrels" / "test.tsv").read_text().splitlines()
    assert lines == ["query-id\tcorpus-id\tscore", "q1\td1\t1", "q2\td2\t2", "q3\td3\t1"]


def test_pick_files_prefers_the_first_pattern_and_names_what_is_missing() -> None:
    files = ["README.md", "data/test-00001.parquet", "data/test-00000.parquet", "test.jsonl.gz"]
    assert fetch.pick_files(files, fetch.STSB_PARTS["test"], fetch.STSB_HUB) == ["test.jsonl.gz"]
    assert fetch.pick_files(files[:3], fetch.STSB_PARTS["test"], fetch.STSB_HUB) == [
        "data/test-00000.parquet",
        "data/test-00001.parquet",
    ]
    with pytest.raises(EvalFetchError, match=r"mteb/stsbenchmark-sts@b0fddb56 has none of validation\.jsonl\.gz"):
        fetch.pick_files(files, fetch.STSB_PARTS["dev"], fetch.STSB_HUB)
