"""``jasper-rag eval-data``: fill the eval folder with the MTEB tasks that ``eval`` and ``bench`` read.

The layout is ``EVAL_FILES`` (see ``data.py``)::

    scifact/corpus.jsonl, scifact/queries.jsonl, scifact/qrels/test.tsv   BEIR SciFact, test split
    stsbenchmark/sts-test.csv, stsbenchmark/sts-dev.csv, stsbenchmark/LICENSE.txt

Two sources:

- a local copy (``--from PATH``): a folder with that layout, or a ``.zip`` / ``.tar.gz`` of it. Every
  file is checked (it exists and the loaders read it), then copied byte for byte, so the scores are
  the ones the source gives. The source is only read; archive members that would land outside the
  unpack folder (``..``, absolute paths) or are links are refused.
- the Hugging Face Hub: MTEB's copies of the tasks (``mteb/scifact``, ``mteb/stsbenchmark-sts`` at the
  revisions MTEB scores), converted to the layout by the ``write_*`` functions below.

Either way the task folders are built and checked in a temp folder inside the eval folder, then
renamed into place, so an interrupted run leaves the previous data (or none), never half a task.
"""

from __future__ import annotations

import csv
import fnmatch
import gzip
import json
import logging
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, TypeVar

from jasper_rag.eval.data import EVAL_FILES, EvalDataError, load_beir, load_sts_pairs, missing_eval_files

log = logging.getLogger(__name__)
T = TypeVar("T")

TASK_FOLDERS = ("scifact", "stsbenchmark")
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")
MAX_UNPACKED_BYTES = 2 * 1024**3  # the real sets take ~9 MB; anything near this is not an eval folder
OFFLINE_HELP = (
    "Either go online and rerun (HF_HUB_OFFLINE=0 jasper-rag eval-data), or pass a local copy: "
    "jasper-rag eval-data --from PATH (a folder or .zip/.tar.gz with scifact/ and stsbenchmark/)"
)


CONNECTION_ERROR_NAMES = {
    "ConnectionError",  # requests (huggingface_hub < 1.0)
    "Timeout",
    "ConnectError",  # httpx (huggingface_hub >= 1.0)
    "TimeoutException",
    "NetworkError",
    "OfflineModeIsEnabled",  # huggingface_hub, HF_HUB_OFFLINE set when it was imported
    "LocalEntryNotFoundError",  # hf_hub_download: could not connect and nothing cached
}


class EvalFetchError(Exception):
    """The eval data could not be fetched; the message is one line meant for the user."""


@dataclass(frozen=True)
class HubDataset:
    """A dataset repository on the Hugging Face Hub and the revision to read."""

    repo_id: str
    revision: str


# The revisions MTEB's SciFact and STSBenchmark tasks load (the published scores were computed on them).
SCIFACT_HUB = HubDataset("mteb/scifact", "0228b52cf27578f30900b9e5271d331663a030d7")
STSB_HUB = HubDataset("mteb/stsbenchmark-sts", "b0fddb56ed78048fa8b90373c8a3cfc37b684831")
# Candidate file names per part, in order of preference (fnmatch patterns; every match of the first
# pattern that matches is read, e.g. parquet shards). The jsonl / tsv names are those of the revisions above.
SCIFACT_PARTS = {
    "corpus": ("corpus.jsonl", "corpus.jsonl.gz", "corpus/*.parquet", "data/corpus-*.parquet", "corpus/*.jsonl*"),
    "queries": ("queries.jsonl", "queries.jsonl.gz", "queries/*.parquet", "data/queries-*.parquet"),
    "qrels": (
        "qrels/test.tsv",
        "qrels/test.jsonl",
        "qrels/test.jsonl.gz",
        "qrels/test*.parquet",
        "default/test*.parquet",
        "data/test-*.parquet",
    ),
}
STSB_PARTS = {
    "test": ("test.jsonl.gz", "test.jsonl", "data/test-*.parquet", "test/*.parquet", "default/test*.parquet"),
    "dev": (
        "validation.jsonl.gz",
        "validation.jsonl",
        "data/validation-*.parquet",
        "validation/*.parquet",
        "default/validation*.parquet",
    ),
}
STSB_LICENSE = """\
STS Benchmark (http://ixa2.si.ehu.eus/stswiki), test and dev splits.

Converted by `jasper-rag eval-data` from the Hugging Face Hub dataset {repo_id} (revision {revision}),
MTEB's copy of the STS Benchmark, to the benchmark's own tab-separated format (genre, file, year, id,
score, sentence1, sentence2).

If you use this data, cite: Eneko Agirre, Daniel Cer, Mona Diab, Inigo Lopez-Gazpio, Lucia Specia.
SemEval-2017 Task 1: Semantic Textual Similarity Multilingual and Crosslingual Focused Evaluation.
Proceedings of SemEval 2017.

The scores are released under a Creative Commons Attribution - Share Alike 4.0 International License
(http://creativecommons.org/licenses/by-sa/4.0/). The text of each source dataset (MSRpar, MSRvid,
headlines, images, answers-forums, answer-answer, track5.en-en, ...) keeps its own license: see
LICENSE.txt in the original archive, Stsbenchmark.tar.gz, on the STS wiki above.
"""


@dataclass(frozen=True)
class FetchResult:
    """What ``fill_eval_dir`` did: the folder, whether it wrote anything, from where, and what it holds."""

    eval_dir: Path
    fetched: bool
    source: str
    counts: dict[str, int]

    def message(self) -> str:
        held = ", ".join(f"{count:,} {what}" for what, count in self.counts.items())
        if not self.fetched:
            return f"eval data already complete in {self.eval_dir} ({held}): nothing to do (--force refetches)"
        return f"eval data in {self.eval_dir} from {self.source}: {held}"


# --------------------------------------------------------------------------- checks
def check_eval_folder(folder: Path) -> dict[str, int]:
    """Raise ``EvalDataError`` unless ``folder`` holds every file of the layout and the loaders read them.

    Returns what it holds (documents, judged queries, sentence pairs).
    """
    missing = missing_eval_files(folder)
    if missing:
        raise EvalDataError(
            f"{folder}: not a complete eval folder, missing {', '.join(missing)} (expected {', '.join(EVAL_FILES)})"
        )
    scifact = load_beir(folder / "scifact")
    test = load_sts_pairs(folder / "stsbenchmark" / "sts-test.csv")
    dev = load_sts_pairs(folder / "stsbenchmark" / "sts-dev.csv")
    if not (folder / "stsbenchmark" / "LICENSE.txt").read_text(encoding="utf-8", errors="replace").strip():
        raise EvalDataError(f"{folder / 'stsbenchmark' / 'LICENSE.txt'}: empty")
    return {
        "SciFact documents": len(scifact.corpus),
        "SciFact judged queries": len(scifact.qrels),
        "STSB test pairs": len(test),
        "STSB dev pairs": len(dev),
    }


def _complete(folder: Path) -> dict[str, int] | None:
    try:
        return check_eval_folder(folder)
    except (EvalDataError, OSError):
        return None


# --------------------------------------------------------------------------- the command
def fill_eval_dir(eval_dir: Path, source: Path | None = None, force: bool = False) -> FetchResult:
    """Fill ``eval_dir`` from ``source`` (folder or archive) or, without one, from the Hugging Face Hub.

    Complete data already there is kept (``force`` refetches). Only the task folders (``scifact/``,
    ``stsbenchmark/``) are replaced; anything else in ``eval_dir`` (other BEIR folders) is left alone.
    """
    eval_dir = Path(eval_dir)
    if not force:
        counts = _complete(eval_dir)
        if counts is not None:
            return FetchResult(eval_dir, False, "", counts)
    if source is not None and not Path(source).exists():
        raise EvalFetchError(f"{source}: no such folder or archive")
    if source is None and _offline_by_setting():
        raise offline_error()
    with _staging(eval_dir) as stage:
        built = stage / "new"
        if source is None:
            from_hub(built, stage / "downloads")
            label = f"the Hugging Face Hub ({SCIFACT_HUB.repo_id}, {STSB_HUB.repo_id})"
        else:
            copy_local(Path(source), built, stage / "unpacked")
            label = str(source)
        counts = check_eval_folder(built)
        _install(built, eval_dir, stage / "old")
    return FetchResult(eval_dir, True, label, counts)


@contextmanager
def _staging(eval_dir: Path) -> Iterator[Path]:
    """A temp folder inside ``eval_dir`` (same file system, so the final renames are atomic), removed after."""
    eval_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".eval-data-", dir=eval_dir))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _install(built: Path, eval_dir: Path, old: Path) -> None:
    """Rename each task folder of ``built`` into ``eval_dir``; a previous one is moved into ``old`` first
    (and put back if the new one cannot be renamed in)."""
    old.mkdir()
    for name in TASK_FOLDERS:
        target = eval_dir / name
        moved = target.exists() or target.is_symlink()
        if moved:
            os.replace(target, old / name)
        try:
            os.replace(built / name, target)
        except OSError:
            if moved:
                os.replace(old / name, target)
            raise


# --------------------------------------------------------------------------- local copies
def copy_local(source: Path, built: Path, unpack_dir: Path) -> None:
    """Check ``source`` (folder or archive) and copy the layout's files, byte for byte, into ``built``."""
    if source.is_dir():
        root = _layout_root(source)
    elif source.name.lower().endswith(ARCHIVE_SUFFIXES):
        unpack_archive(source, unpack_dir)
        root = _layout_root(unpack_dir)
    else:
        raise EvalFetchError(f"{source}: expected a folder or a .zip / .tar.gz archive with scifact/ and stsbenchmark/")
    missing = missing_eval_files(root)
    if missing:
        raise EvalFetchError(
            f"{source}: not an eval data folder, missing {', '.join(missing)} "
            "(expected scifact/ and stsbenchmark/ as `jasper-rag eval-data --help` describes)"
        )
    try:
        check_eval_folder(root)
    except EvalDataError as err:  # name the file inside the archive, not the temp folder it was unpacked to
        raise EvalFetchError(str(err).replace(str(unpack_dir), f"{source}:")) from None
    for name in EVAL_FILES:
        target = built / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / name, target)  # content only: the source's modes (often read-only) stay behind


def _layout_root(folder: Path, depth: int = 2) -> Path:
    """``folder``, or the single folder it wraps (an archive of ``eval/``), that holds the task folders."""
    if any((folder / name).is_dir() for name in TASK_FOLDERS) or depth == 0:
        return folder
    children = [child for child in folder.iterdir() if child.is_dir() and child.name != "__MACOSX"]
    return _layout_root(children[0], depth - 1) if len(children) == 1 else folder


def _member_path(root: Path, archive: Path, name: str) -> Path | None:
    """Where archive member ``name`` goes under ``root``; refuses names that would escape it."""
    pure = PurePosixPath(name.replace("\\", "/"))
    parts = [part for part in pure.parts if part not in ("", ".")]
    if pure.is_absolute() or ".." in parts or (parts and ":" in parts[0]):
        raise EvalFetchError(f"{archive}: refused archive member '{name}': it points outside the target folder")
    if not parts:
        return None
    target = root.joinpath(*parts)
    if not target.resolve().is_relative_to(root.resolve()):
        raise EvalFetchError(f"{archive}: refused archive member '{name}': it points outside the target folder")
    return target


def unpack_archive(archive: Path, root: Path) -> None:
    """Extract a .zip or tar archive into ``root``: regular files and folders only, nothing outside ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    try:
        if archive.name.lower().endswith(".zip"):
            _unpack_zip(archive, root)
        else:
            _unpack_tar(archive, root)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, gzip.BadGzipFile) as err:
        raise EvalFetchError(f"{archive}: unreadable archive ({err})") from None


def _write_member(target: Path, stream: IO[bytes], budget: list[int], archive: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        while chunk := stream.read(1 << 20):
            budget[0] -= len(chunk)
            if budget[0] < 0:
                raise EvalFetchError(
                    f"{archive}: unpacks to more than {MAX_UNPACKED_BYTES >> 20} MB: not an eval folder"
                )
            out.write(chunk)


def _unpack_zip(archive: Path, root: Path) -> None:
    budget = [MAX_UNPACKED_BYTES]
    with zipfile.ZipFile(archive) as bundle:
        for info in bundle.infolist():
            target = _member_path(root, archive, info.filename)
            if target is None:
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                raise EvalFetchError(f"{archive}: refused archive member '{info.filename}': a link")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            with bundle.open(info) as stream:
                _write_member(target, stream, budget, archive)


def _unpack_tar(archive: Path, root: Path) -> None:
    budget = [MAX_UNPACKED_BYTES]
    with tarfile.open(archive, "r:*") as bundle:
        for member in bundle:
            target = _member_path(root, archive, member.name)
            if target is None:
                continue
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                stream = bundle.extractfile(member)
                if stream is None:
                    raise EvalFetchError(f"{archive}: unreadable archive member '{member.name}'")
                with stream:
                    _write_member(target, stream, budget, archive)
            else:
                raise EvalFetchError(f"{archive}: refused archive member '{member.name}': not a regular file or folder")


# --------------------------------------------------------------------------- Hugging Face Hub
def _offline_by_setting() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _is_connection_error(err: BaseException) -> bool:
    """No network, or the hub library refusing to go online.

    Matched by class name too: requests' and httpx's connection errors (whichever the installed
    huggingface_hub uses) and the hub's own offline errors do not derive from the built-in ones.
    """
    names = {cls.__name__ for cls in type(err).__mro__}
    return isinstance(err, (ConnectionError, TimeoutError)) or bool(names & CONNECTION_ERROR_NAMES)


def offline_error(reason: str = "offline") -> EvalFetchError:
    return EvalFetchError(f"cannot reach the Hugging Face Hub ({reason}). {OFFLINE_HELP}")


def _list_files(dataset: HubDataset) -> list[str]:
    from huggingface_hub import list_repo_files

    return list_repo_files(dataset.repo_id, repo_type="dataset", revision=dataset.revision)


def _download(dataset: HubDataset, filename: str, cache_dir: Path) -> Path:
    from huggingface_hub import hf_hub_download

    return Path(
        hf_hub_download(
            dataset.repo_id, filename, repo_type="dataset", revision=dataset.revision, cache_dir=str(cache_dir)
        )
    )


def _hub_call(call: Callable[[], T], what: str) -> T:
    """Run one hub call; connection trouble becomes the offline message, anything else one line naming ``what``."""
    try:
        return call()
    except Exception as err:  # the hub library's errors do not share a base class across versions
        if _is_connection_error(err):
            raise offline_error() from None
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise EvalFetchError(f"{what}: {type(err).__name__}: {first_line[:200]}") from None


def pick_files(files: Iterable[str], patterns: Iterable[str], dataset: HubDataset) -> list[str]:
    """Every file matching the first of ``patterns`` that matches any (sorted: parquet shards in order)."""
    names = list(files)
    patterns = tuple(patterns)
    for pattern in patterns:
        found = sorted(name for name in names if fnmatch.fnmatch(name, pattern))
        if found:
            return found
    raise EvalFetchError(f"{dataset.repo_id}@{dataset.revision[:8]} has none of {', '.join(patterns)}")


def from_hub(built: Path, downloads: Path) -> None:
    """Download MTEB's SciFact and STS Benchmark copies and write them into ``built`` in the layout."""
    if _offline_by_setting():
        raise offline_error()

    def fetch(dataset: HubDataset, parts: dict[str, tuple[str, ...]]) -> dict[str, list[Path]]:
        listing = _hub_call(lambda: _list_files(dataset), f"listing {dataset.repo_id}")
        chosen = {part: pick_files(listing, patterns, dataset) for part, patterns in parts.items()}
        return {
            part: [
                _hub_call(lambda name=name: _download(dataset, name, downloads), f"{dataset.repo_id}/{name}")
                for name in names
            ]
            for part, names in chosen.items()
        }

    scifact = fetch(SCIFACT_HUB, SCIFACT_PARTS)
    stsb = fetch(STSB_HUB, STSB_PARTS)
    folder = built / "scifact"
    write_beir_corpus(read_records(scifact["corpus"]), folder / "corpus.jsonl")
    write_beir_queries(read_records(scifact["queries"]), folder / "queries.jsonl")
    write_qrels(read_records(scifact["qrels"]), folder / "qrels" / "test.tsv")
    folder = built / "stsbenchmark"
    write_sts(read_records(stsb["test"]), folder / "sts-test.csv")
    write_sts(read_records(stsb["dev"]), folder / "sts-dev.csv")
    (folder / "LICENSE.txt").write_text(
        STSB_LICENSE.format(repo_id=STSB_HUB.repo_id, revision=STSB_HUB.revision), encoding="utf-8"
    )


# --------------------------------------------------------------------------- conversion (hub files -> layout)
def read_records(paths: Iterable[Path]) -> Iterator[dict]:
    """The rows of jsonl (optionally .gz), tsv (header line) or parquet files, as dicts, in file order."""
    for path in paths:
        name = path.name.lower()
        if name.endswith(".parquet"):
            try:
                import pyarrow.parquet as parquet
            except ImportError:
                raise EvalFetchError(
                    f"{path.name}: reading parquet files needs pyarrow (pip install pyarrow)"
                ) from None
            yield from parquet.read_table(path).to_pylist()
            continue
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8", newline="") as handle:
            if name.endswith((".tsv", ".tsv.gz")):
                yield from csv.DictReader(handle, delimiter="\t")
                continue
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    raise EvalFetchError(f"{path.name}, line {number}: not JSON") from None
                if not isinstance(record, dict):
                    raise EvalFetchError(f"{path.name}, line {number}: expected a JSON object")
                yield record


def _field(record: dict, *names: str, default: object = None) -> object:
    for name in names:
        if record.get(name) is not None:
            return record[name]
    if default is None:
        raise EvalFetchError(f"record without {' / '.join(names)}: {str(record)[:120]}")
    return default


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _write_lines(path: Path, lines: Iterable[str]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for line in lines:
            out.write(line + "\n")
            count += 1
    return count


def write_beir_corpus(records: Iterable[dict], path: Path) -> int:
    """BEIR ``corpus.jsonl``: one ``{"_id", "title", "text"}`` object a line (other fields dropped)."""
    return _write_lines(
        path,
        (
            json.dumps(
                {
                    "_id": _text(_field(r, "_id", "id")),
                    "title": _text(r.get("title")),
                    "text": _text(r.get("text")),
                },
                ensure_ascii=False,
            )
            for r in records
        ),
    )


def write_beir_queries(records: Iterable[dict], path: Path) -> int:
    """BEIR ``queries.jsonl``: one ``{"_id", "text"}`` object a line."""
    return _write_lines(
        path,
        (
            json.dumps({"_id": _text(_field(r, "_id", "id")), "text": _text(r.get("text"))}, ensure_ascii=False)
            for r in records
        ),
    )


def write_qrels(records: Iterable[dict], path: Path) -> int:
    """BEIR ``qrels/<split>.tsv``: a ``query-id corpus-id score`` header, then one integer-graded pair a line."""

    def lines() -> Iterator[str]:
        yield "query-id\tcorpus-id\tscore"
        for r in records:
            query = _text(_field(r, "query-id", "query_id", "qid"))
            doc = _text(_field(r, "corpus-id", "corpus_id", "doc_id", "docid"))
            try:
                grade = int(float(_field(r, "score", "relevance", "label")))  # type: ignore[arg-type]
            except ValueError:
                raise EvalFetchError(f"qrels: score of ({query}, {doc}) is not a number") from None
            yield f"{query}\t{doc}\t{grade}"

    return _write_lines(path, lines()) - 1


def _cell(value: object) -> str:
    """A tab-separated cell: tabs and line breaks inside become spaces (the format splits on them)."""
    return " ".join(_text(value).replace("\t", " ").splitlines())


def write_sts(records: Iterable[dict], path: Path) -> int:
    """An STS Benchmark file: genre, file, year, id, score (3 decimals, 0-5), sentence1, sentence2, tab-separated.

    MTEB's rows carry the same fields as ``genre``, ``dataset``, ``year``, ``sid``, ``score``,
    ``sentence1``, ``sentence2``; missing metadata is left empty. The score is written with three
    decimals, as in the original files (a float32 3.799999952 reads back as 3.800).
    """

    def lines() -> Iterator[str]:
        for number, r in enumerate(records):
            try:
                score = float(_field(r, "score", "similarity_score", "label"))  # type: ignore[arg-type]
            except ValueError:
                raise EvalFetchError(f"STS row {number}: score is not a number") from None
            cells = [
                _cell(r.get("genre")),
                _cell(r.get("dataset", r.get("file"))),
                _cell(r.get("year")),
                _cell(r.get("sid", r.get("id", f"{number:04d}"))),
                f"{score:.3f}",
                _cell(_field(r, "sentence1")),
                _cell(_field(r, "sentence2")),
            ]
            yield "\t".join(cells)

    return _write_lines(path, lines())
