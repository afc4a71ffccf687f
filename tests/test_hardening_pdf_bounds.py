"""Hardening: the work one file may cost, not only its bytes.

A few-kB PDF whose pages all draw one Flate stream of a few MB is decoded once per page by text
extraction (a 9 kB file with 20 pages took 170 s): the decoded page content is counted before any text
is extracted and refused over ``JASPER_INGEST_MAX_PDF_CONTENT_MB``. And whatever a parser does, it runs
in a worker process with CPU, memory and wall-clock limits, and the store's writer lock is not held
while files are parsed or embedded. Figures go to ``reports/reliability.md`` (section ``pdf_bounds``).

The module's top level imports only the loaders: the worker process imports it to find the hostile
loaders below, under its memory limit.
"""

from __future__ import annotations

import io
import os
import resource
import time
from pathlib import Path

import pytest
from pypdf import PdfReader

from jasper_rag.ingest.loaders import FILE_TYPES, FileType, LoadError, LoadLimits, load_pdf, pdf_content_bytes
from jasper_rag.ingest.worker import ParseLimits, ParseWorker

REFUSE_WITHIN_S = 5.0
ROWS: list[list[object]] = []
FACTS: dict[str, object] = {}


# ----------------------------------------------------------------- loaders the worker runs (by name)
def spin_loader(path, data, limits=None):
    """A parser stuck in a loop (pure CPU)."""
    while True:
        pass


def sleep_loader(path, data, limits=None):
    """A parser stuck waiting (no CPU: only the wall clock stops it)."""
    time.sleep(3600)


def hog_loader(path, data, limits=None):
    """A parser that allocates without end."""
    hoard = []
    while True:
        hoard.append(bytearray(64 * 2**20))


def crash_loader(path, data, limits=None):
    raise KeyError("a loader bug")


def segfault_loader(path, data, limits=None):
    """A parser in C that crashes the process (in-process, this ended the whole run)."""
    import ctypes

    ctypes.string_at(0)


def hostile_pdfs() -> dict[str, bytes]:
    from tests.hostile_files import one_page_pdf, shared_content_pdf, shared_form_pdf, stream, zeros_deflated

    return {
        "shared-content.pdf (20 pages x one 4 MB stream)": shared_content_pdf(20, 4 * 2**20),
        "shared-form.pdf (20 pages x one 4 MB form XObject)": shared_form_pdf(20, 4 * 2**20),
        "shared-content-200.pdf (200 pages x one 4 MB stream)": shared_content_pdf(200, 4 * 2**20),
        "zip-bomb.pdf (one page, 100 MB of zeros)": one_page_pdf(content=stream(zeros_deflated(100 * 2**20), True)),
    }


def cpu_now() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime


def cpu_of(pid: int) -> float:
    """CPU seconds a live process has used (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------- (a) decoded content is counted first
def test_pdfs_whose_pages_share_a_huge_stream_are_refused_quickly():
    limits = LoadLimits(max_pdf_pages=2000, max_image_pixels=4_000_000)  # default content cap: 64 MiB
    with ParseWorker(ParseLimits(60, 2 * 2**30, 120.0)) as worker:
        worker.load(FILE_TYPES[".txt"].load, Path("warm.txt"), b"warm up", limits)  # start-up is not the file's
        for name, data in hostile_pdfs().items():
            counted = pdf_content_bytes(PdfReader(io.BytesIO(data)), 2**40)  # what text extraction would decode
            wall, cpu = time.perf_counter(), cpu_of(worker.process.pid)
            with pytest.raises(LoadError, match=r"too much page content: over .* MiB decoded") as refused:
                worker.load(load_pdf, Path(name.split()[0]), data, limits)
            wall, cpu = time.perf_counter() - wall, cpu_of(worker.process.pid) - cpu
            assert wall < REFUSE_WITHIN_S, (name, wall)
            assert worker.started == 1  # refused by the count, not by a limit
            ROWS.append(
                [
                    name,
                    f"{len(data) / 1024:.0f} kB",
                    f"{counted / 2**20:,.0f} MiB",
                    f"{wall:.2f} / {cpu:.2f}",
                    str(refused.value),
                ]
            )
            worst = max(wall, float(FACTS.get("worst case until refusal (wall s)", 0.0)))
            FACTS["worst case until refusal (wall s)"] = f"{worst:.2f}"


def test_ordinary_pdfs_are_counted_and_loaded():
    from jasper_rag.ingest.sample_build import SAMPLE_DIR
    from tests.hostile_files import shared_content_pdf

    sample = (SAMPLE_DIR / "jasper-overview.pdf").read_bytes()
    limits = LoadLimits(max_pdf_pages=2000, max_image_pixels=4_000_000)
    assert len(load_pdf(Path("sample.pdf"), sample, limits).pages) == 3
    small = shared_content_pdf(3, 20_000)  # a shared stream under the cap is fine
    assert len(load_pdf(Path("small.pdf"), small, limits).pages) == 3
    tight = LoadLimits(max_pdf_pages=2000, max_image_pixels=4_000_000, max_pdf_content_bytes=50_000)
    with pytest.raises(LoadError, match="JASPER_INGEST_MAX_PDF_CONTENT_MB"):
        load_pdf(Path("small.pdf"), small, tight)  # 3 x 20 kB counted once per page


def test_unbounded_cost_of_a_shared_stream_for_the_record():
    """What the cap saves: the text extraction time per MB of page content, measured on one page; and what
    an ordinary PDF costs under the default limits."""
    from jasper_rag.ingest.sample_build import text_pdf
    from tests.hostile_files import shared_content_pdf

    data = shared_content_pdf(1, 2**20)
    limits = LoadLimits(max_pdf_pages=2000, max_image_pixels=4_000_000, max_pdf_content_bytes=2**40)
    started = time.perf_counter()
    load_pdf(Path("one.pdf"), data, limits)
    per_mb = time.perf_counter() - started
    words = "the quick brown fox jumps over the lazy dog while distillation trains a student encoder " * 30
    ordinary = text_pdf([words] * 200)
    started = time.process_time()
    load_pdf(Path("ordinary.pdf"), ordinary, limits)
    cpu = time.process_time() - started
    content = pdf_content_bytes(PdfReader(io.BytesIO(ordinary)), 2**40)
    FACTS["an ordinary dense text PDF under the defaults"] = (
        f"200 pages, {content / 2**20:.2f} MiB of page content, {cpu:.1f} s CPU ({200 / cpu:.0f} pages/s): "
        f"2,000 pages (the page limit) ~ {2000 / (200 / cpu):.0f} s CPU, well under the 60 s CPU limit"
    )
    FACTS["text extraction without the cap"] = (
        f"{per_mb:.2f} s per MB of page content (one page of 1 MB); so 20 pages x 4 MB ~ {per_mb * 80:.0f} s, "
        f"200 pages x 4 MB ~ {per_mb * 800 / 60:.0f} min"
    )


# ----------------------------------------------------------------- (b) the worker's limits
def folder_with(tmp_path: Path, bad: str) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / bad).write_text("anything")
    (folder / "good.md").write_text("# cats\nthe cat sat on the mat.")
    return folder


@pytest.mark.parametrize(
    ("loader", "overrides", "reason"),
    [
        (spin_loader, {"ingest_parse_cpu_s": 1}, "parsing took more than 1 s of CPU: stopped"),
        (sleep_loader, {"ingest_parse_wall_s": 2.0}, "parsing took more than 2 s (wall clock): stopped"),
        (hog_loader, {"ingest_parse_memory_mb": 512}, "parsing needed more than 512 MiB of memory: stopped"),
        (crash_loader, {}, "unexpected error: KeyError: 'a loader bug'"),
        (segfault_loader, {}, "parsing crashed (signal 11; memory limit 2048 MiB)"),
    ],
    ids=["cpu", "wall", "memory", "bug", "segfault"],
)
def test_a_parser_that_runs_away_is_stopped_and_the_run_goes_on(
    tmp_path, tiny_encoder, monkeypatch, loader, overrides, reason
):
    from jasper_rag.ingest.pipeline import ingest_paths
    from jasper_rag.store import DocumentStatus
    from tests.ingest_support import make_store, small_settings

    monkeypatch.setitem(FILE_TYPES, ".txt", FileType("text", loader))
    folder = folder_with(tmp_path, "runaway.txt")
    store = make_store(tmp_path)
    wall, cpu = time.perf_counter(), cpu_now()
    summary = ingest_paths([folder], tiny_encoder, store, small_settings(**overrides), progress=False)
    wall, cpu = time.perf_counter() - wall, cpu_now() - cpu
    outcomes = {Path(o.path).name: o for o in summary.outcomes}
    assert outcomes["runaway.txt"].status == DocumentStatus.FAILED
    assert outcomes["runaway.txt"].reason == reason
    assert outcomes["good.md"].status == DocumentStatus.INGESTED  # parsed by a fresh worker
    assert wall < 60
    FACTS[f"run with a {loader.__name__.split('_')[0]} parser ({overrides or 'defaults'})"] = (
        f"refused in a {wall:.1f} s run ({cpu:.1f} s CPU, parent + workers): {reason}"
    )


def test_worker_start_up_and_round_trip_for_the_record():
    limits = LoadLimits(max_pdf_pages=2000, max_image_pixels=4_000_000)
    load = FILE_TYPES[".txt"].load
    started = time.perf_counter()
    with ParseWorker(ParseLimits(60, 2 * 2**30, 120.0)) as worker:
        worker.load(load, Path("a.txt"), b"the cat", limits)
        start_up = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(200):
            worker.load(load, Path("a.txt"), b"the cat sat on the mat. " * 40, limits)
        per_file = (time.perf_counter() - started) / 200
        assert worker.started == 1
    assert per_file < 0.05
    FACTS["worker start-up (one per run, again after a limit is hit)"] = f"{start_up:.2f} s"
    FACTS["per small file through the worker"] = f"{per_file * 1000:.2f} ms"


def test_runs_in_one_process_share_one_worker(tmp_path, tiny_encoder, monkeypatch):
    """A UI ingests one upload per run: the worker outlives the run instead of starting per file."""
    from jasper_rag.ingest import worker
    from jasper_rag.ingest.pipeline import ingest_paths
    from tests.ingest_support import make_store, small_settings

    worker.close_idle()
    starts = []
    start = worker.ParseWorker._start
    monkeypatch.setattr(worker.ParseWorker, "_start", lambda self: starts.append(1) or start(self))
    store = make_store(tmp_path)
    for number in range(3):
        upload = tmp_path / f"upload{number}.txt"
        upload.write_text(f"the cat sat on mat number {number}.")
        assert ingest_paths([upload], tiny_encoder, store, small_settings(), progress=False).exit_code == 0
    assert len(starts) == 1
    worker.close_idle()
    FACTS["worker processes started for 3 one-file runs in one process"] = len(starts)


# ----------------------------------------------------------------- (c) the writer lock only around writes
def test_the_writer_lock_is_free_while_files_are_parsed_and_embedded(tmp_path, tiny_encoder, monkeypatch):
    import fcntl

    from jasper_rag.ingest import pipeline
    from jasper_rag.store.store import LOCK_FILE
    from tests.ingest_support import make_store, small_settings

    folder = tmp_path / "docs"
    folder.mkdir()
    for number in range(3):
        (folder / f"doc{number}.txt").write_text(f"the cat sat on the mat number {number}.")
    store = make_store(tmp_path)
    lock_path = store.index_dir / LOCK_FILE
    seen: list[tuple[str, bool]] = []

    def lock_is_free() -> bool:
        with lock_path.open("a") as lock:  # another open file: conflicts with the writer's flock
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            fcntl.flock(lock, fcntl.LOCK_UN)
            return True

    prepare, embed = pipeline.Ingestor._prepare, pipeline.embed_entry_heads

    def watched_prepare(self, *args, **kwargs):
        seen.append(("parse", lock_is_free()))
        return prepare(self, *args, **kwargs)

    def watched_embed(*args, **kwargs):
        seen.append(("embed", lock_is_free()))
        return embed(*args, **kwargs)

    monkeypatch.setattr(pipeline.Ingestor, "_prepare", watched_prepare)
    monkeypatch.setattr(pipeline, "embed_entry_heads", watched_embed)
    summary = pipeline.ingest_paths([folder], tiny_encoder, store, small_settings(), progress=False)
    assert summary.exit_code == 0, summary.render()
    assert {step for step, _ in seen} == {"parse", "embed"}
    assert all(free for _, free in seen), seen
    FACTS["writer lock while parsing and embedding"] = "free (held only for bind, removals and each commit)"


def test_record_pdf_bounds():
    if len(ROWS) < 4:
        pytest.skip("run with the tests above")
    record_rows = (
        ["hostile file", "on disk", "decoded content counted", "wall / CPU s to refusal (worker)", "reason"],
        ROWS,
    )
    from tests.reliability_report import record

    record(
        "pdf_bounds",
        "Work per file: PDF page content counted before extraction; parsing in a bounded worker",
        {"content cap (JASPER_INGEST_MAX_PDF_CONTENT_MB)": "64 MiB, counted per page", **FACTS},
        record_rows,
        [
            "Counting decodes each distinct stream once, incrementally, and stops past the cap: its cost is "
            "bounded by the cap whatever the file claims.",
            "Worker limits: RLIMIT_CPU (SIGXCPU ends it, even inside C code), RLIMIT_AS, wall clock (killed); "
            "a file that hits one is failed with that limit, the next file gets a fresh worker.",
        ],
    )


class _Planted:
    """Unpickling this would create a file: what a compromised worker could send if answers were pickled."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_worker_answers_are_json_never_unpickled(tmp_path) -> None:
    import pickle
    from multiprocessing import Pipe

    from jasper_rag.ingest import worker

    target = tmp_path / "planted"
    parent, child = Pipe()
    child.send_bytes(pickle.dumps(("ok", _Planted(str(target)))))
    with pytest.raises(ValueError):
        worker._read_answer(parent)
    assert not target.exists()
    child.send_bytes(b'["ok", ["text", [[1, "page one", null, false]]]]')
    assert worker.from_plain(worker._read_answer(parent)[1]).pages[0].text == "page one"
