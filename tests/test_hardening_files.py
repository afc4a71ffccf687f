"""Hardening: hostile and broken files through every loader and the whole pipeline; odd upload names.

Every input ends as loaded (with storable text) or refused with a clear reason, in bounded time and
memory, and the run goes on. Figures go to ``reports/reliability.md``.
"""

from __future__ import annotations

import io
import os
import re
import time
import tracemalloc
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from jasper_rag.ingest.loaders import FILE_TYPES, Content, FaqContent, LoadError, LoadLimits, TextContent, file_type
from jasper_rag.ingest.pipeline import ingest_paths
from jasper_rag.ingest.sample_build import SAMPLE_DIR
from jasper_rag.store import DocumentStatus, EntryKind
from jasper_rag.store.doctor import check
from jasper_rag.ui.uploads import UploadPolicy, save_uploads
from tests.hostile_files import Hostile, catalogue
from tests.ingest_support import DATABASES, copy_sample, database_url, make_store, small_settings
from tests.reliability_report import record

LIMITS = LoadLimits(max_pdf_pages=50, max_image_pixels=4_000_000)
MAX_SECONDS = 60.0  # per hostile file, traced by tracemalloc, on a loaded 2-core machine
MAX_PEAK_MIB = 512.0
FUZZ_EXAMPLES = 30
FUZZ_TALLY: dict[str, Counter[str]] = {}
GOOD_TEXT = b"the cat sat on the mat. the dog sat on the sofa."
ODD_NAMES = (
    "new\nline.txt",
    "tab\tand  spaces .txt",
    "-rf.txt",
    "\u00fcn\u00efc\u00f6d\u00e9 \u2713.md",
    "quote'\"<>|*?.txt",
    "%2e%2e%2fescape.txt",
    "\u202eexe.txt",
    "x" * 250 + ".txt",
)


@pytest.fixture(scope="module")
def hostile() -> list[Hostile]:
    return catalogue(LIMITS.max_pdf_pages)


def texts_of(content: Content) -> list[str]:
    if isinstance(content, TextContent):
        return [page.text for page in content.pages]
    if isinstance(content, FaqContent):
        return [part for pair in content.pairs for part in pair]
    return []


def assert_storable(content: Content) -> None:
    for text in texts_of(content):
        assert "\x00" not in text
        text.encode("utf-8")  # no lone surrogates


def load(name: str, data: bytes) -> Content:
    return file_type(Path(name)).load(Path(name), data, LIMITS)


def test_every_hostile_file_is_refused_or_cleaned_in_bounded_time_and_memory(hostile):
    rows = []
    for item in hostile:
        tracemalloc.start()
        started = time.perf_counter()
        try:
            content = load(item.name, item.data)
            outcome = "loaded"
        except LoadError as err:
            content, outcome = None, f"refused: {err}"
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        rows.append([item.name, f"{len(item.data):,}", outcome[:110], f"{seconds:.2f}", f"{peak:.1f}"])
        if item.reason is None:
            assert content is not None, f"{item.name}: {outcome}"
            assert_storable(content)
        else:
            assert content is None and item.reason in outcome, f"{item.name}: {outcome}"
        assert seconds < MAX_SECONDS and peak < MAX_PEAK_MIB, rows[-1]
    record(
        "files",
        "Hostile files through the loaders",
        {
            "inputs tried": len(rows),
            "refused with a reason": sum(row[2].startswith("refused") for row in rows),
            "loaded, text cleaned": sum(row[2] == "loaded" for row in rows),
            "crashes": 0,
            "slowest (s)": max(float(row[3]) for row in rows),
            "largest Python heap peak (MiB)": max(float(row[4]) for row in rows),
            "limits": f"{LIMITS.max_pdf_pages} PDF pages, {LIMITS.max_image_pixels:,} image pixels (test values)",
        },
        (["file", "bytes", "outcome", "seconds (traced)", "heap peak MiB"], rows),
        [
            "Seconds are measured with tracemalloc on, which slows pure-Python parsing several times.",
            "Limits in production: JASPER_INGEST_MAX_FILE_MB (50), JASPER_INGEST_MAX_PDF_PAGES (2000), "
            "JASPER_MAX_IMAGE_PIXELS (40,000,000); pypdf caps every decompressed stream at 75 MB.",
        ],
    )


# ----------------------------------------------------------------- fuzzing
def image_seed(suffix: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 12), "teal").save(buffer, format=Image.registered_extensions()[suffix])
    return buffer.getvalue()


SEED_FILES = {
    ".pdf": "jasper-overview.pdf",
    ".txt": "vector-search.txt",
    ".md": "distillation.md",
    ".rst": "matryoshka.rst",
    ".html": "rag-primer.html",
    ".htm": "rag-primer.html",
    ".csv": "faq.csv",
    ".jsonl": "faq-search.jsonl",
    ".docx": "team-handbook.docx",
    ".pptx": "release-slides.pptx",
    ".xlsx": "model-sizes.xlsx",
    ".odt": "style-guide.odt",
    ".epub": "search-notes.epub",
    ".eml": "support-thread.mbox",
    ".mbox": "support-thread.mbox",
}
WHOLE_SEEDS = {".docx", ".pptx", ".xlsx", ".odt", ".epub"}  # zip files: cut short, every one is just "not a zip"


def seed_bytes(suffix: str) -> bytes:
    """A valid file of the type, which the fuzzer mutates (random bytes alone rarely get past a header)."""
    name = SEED_FILES.get(suffix)
    if name is None:
        return image_seed(suffix)
    data = (SAMPLE_DIR / name).read_bytes()
    return data if suffix in WHOLE_SEEDS else data[:6000]


@st.composite
def mutations(draw, seed: bytes) -> bytes:
    """``seed`` with a few bytes overwritten, a few inserted, and maybe truncated."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(0, 12))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    for _ in range(draw(st.integers(0, 3))):
        data[draw(st.integers(0, len(data))) : 0] = draw(st.binary(min_size=1, max_size=64))
    end = draw(st.one_of(st.just(len(data)), st.integers(0, len(data))))
    return bytes(data[:end])


@pytest.mark.parametrize("suffix", sorted(FILE_TYPES))
def test_fuzzed_bytes_of_every_type_load_or_are_refused(suffix):
    tally = FUZZ_TALLY.setdefault(suffix, Counter())

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=timedelta(seconds=20),
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.one_of(st.binary(max_size=4096), mutations(seed_bytes(suffix))))
    def loads_or_refuses(data: bytes) -> None:
        try:
            content = load(f"fuzz{suffix}", data)
        except LoadError:
            tally["refused"] += 1
            return
        assert_storable(content)
        tally["loaded"] += 1

    loads_or_refuses()
    total = Counter()
    for counts in FUZZ_TALLY.values():
        total.update(counts)
    record(
        "fuzz",
        "Fuzzed files (hypothesis)",
        {
            "file types": len(FUZZ_TALLY),
            "inputs tried": sum(total.values()),
            "loaded (text storable)": total["loaded"],
            "refused with a reason": total["refused"],
            "crashes": 0,
            "examples per type": f"{FUZZ_EXAMPLES} (random bytes and mutated valid files; deterministic seed)",
        },
        (
            ["extension", "inputs", "loaded", "refused"],
            [[ext, sum(c.values()), c["loaded"], c["refused"]] for ext, c in sorted(FUZZ_TALLY.items())],
        ),
    )


# ----------------------------------------------------------------- the whole pipeline
def write_hostile_folder(folder: Path, hostile: list[Hostile]) -> dict[str, str | None]:
    """Hostile files, odd names, special files and a copy of the sample corpus; returns file name ->
    reason fragment (None: must be ingested and searchable)."""
    copy_sample(folder)
    expected: dict[str, str | None] = {
        str(path.relative_to(folder)): None for path in folder.rglob("*") if path.is_file() and path.name[0] != "."
    }
    for item in hostile:
        (folder / item.name).write_bytes(item.data)
        expected[item.name] = item.reason
    for suffix in sorted(FILE_TYPES):
        (folder / f"empty{suffix}").write_bytes(b"")
        expected[f"empty{suffix}"] = "empty file (0 bytes)"
    for name in ODD_NAMES:
        (folder / name).write_bytes(GOOD_TEXT)
        expected[name] = None
    (folder / "dir.pdf").mkdir()
    (folder / "dir.pdf" / "inside.txt").write_bytes(GOOD_TEXT)
    expected["dir.pdf/inside.txt"] = None
    os.symlink(folder / "loop-b.txt", folder / "loop-a.txt")
    os.symlink(folder / "loop-a.txt", folder / "loop-b.txt")
    os.symlink(folder / "nowhere.txt", folder / "dangling.md")
    os.symlink("/dev/zero", folder / "dev-zero.txt")
    os.mkfifo(folder / "fifo.txt")
    expected.update({"loop-a.txt": "unreadable", "loop-b.txt": "unreadable", "dangling.md": "unreadable"})
    expected.update({"dev-zero.txt": "symlink pointing outside", "fifo.txt": "not a regular file"})
    (folder / "program.exe").write_bytes(b"MZ\x90\x00")
    expected["program.exe"] = "unsupported file type"
    return expected


@pytest.mark.parametrize("backend", DATABASES)
def test_a_hostile_folder_is_ingested_around_its_bad_files(backend, tmp_path, tiny_encoder, hostile):
    folder = tmp_path / "hostile"
    expected = write_hostile_folder(folder, hostile)
    undecodable = os.fsencode(folder) + b"/caf\xe9-latin1-name.txt"
    Path(os.fsdecode(undecodable)).write_bytes(GOOD_TEXT)
    settings_ = small_settings(ingest_max_pdf_pages=LIMITS.max_pdf_pages, max_image_pixels=LIMITS.max_image_pixels)
    with database_url(backend, tmp_path) as url:
        store = make_store(tmp_path, url)
        started = time.perf_counter()
        summary = ingest_paths([folder], tiny_encoder, store, settings_, progress=False)
        seconds = time.perf_counter() - started
        outcomes = {o.path: o for o in summary.outcomes}
        assert summary.exit_code == 3
        assert outcomes.pop(str(folder) + "/caf\\xe9-latin1-name.txt").reason.startswith("file name is not valid UTF-8")
        assert sorted(outcomes) == sorted(str(folder / name) for name in expected)  # one outcome per file
        for name, reason in expected.items():
            outcome = outcomes[str(folder / name)]
            if reason is None:
                assert outcome.status in DocumentStatus.DONE, (name, outcome)
            else:
                assert outcome.status == DocumentStatus.FAILED and reason in outcome.reason, (name, outcome)
        report = check(store)
        assert report.consistent, report.render()
        searchable = {
            v.path for kind in (EntryKind.CHUNK, EntryKind.FAQ) for v in store.fetch(store.index(kind, "full").ids())
        }
        ingested = {o.path for o in summary.outcomes if o.status == DocumentStatus.INGESTED}
        assert ingested <= searchable
        failed = len(summary.failed())
        store.close()
    record(
        f"hostile_run_{backend}",
        f"A hostile folder through the whole pipeline ({backend})",
        {
            "files": len(summary.outcomes),
            "ingested and searchable": len(ingested),
            "refused with a reason (recorded)": failed,
            "run completed": f"yes, in {seconds:.1f} s; doctor: consistent",
            "special files": "symlink loop, dangling symlink, /dev/zero, FIFO, folder named .pdf, non-UTF-8 name",
            "odd names ingested": len(ODD_NAMES),
        },
    )


# ----------------------------------------------------------------- uploads
UPLOAD_NAMES = (
    "../../etc/passwd.txt",
    "..\\..\\windows\\system.ini.txt",
    "/absolute/path/notes.md",
    "nul\x00byte.txt",
    "CON.txt",
    "\u202egnp.exe.txt",
    ".hidden.txt",
    "..pdf",
    "Q3 report (final).PDF",
    "x" * 1000 + ".md",
    "%2e%2e%2fescape.txt",
    "no-extension",
    "evil.exe",
    "trailing-slash.txt/",
)
SAFE_NAME = re.compile(r"^[a-z0-9-]+-[0-9a-f]{12}\.[a-z]+$")


def test_uploads_land_under_the_uploads_folder_with_generated_names(tmp_path):
    policy = UploadPolicy(tuple(sorted(FILE_TYPES)), 1.0, tmp_path / "uploads")
    saved, refused = save_uploads(
        [(name, GOOD_TEXT + name.encode("utf-8", "replace")) for name in UPLOAD_NAMES], policy
    )
    assert {item.name for item in refused} == {"no-extension", "evil.exe", "trailing-slash.txt/"}
    for upload in saved:
        assert upload.path.parent == policy.folder and SAFE_NAME.match(upload.path.name), upload
    written = sorted(path for path in tmp_path.rglob("*") if path.is_file())
    assert written == sorted(upload.path for upload in saved)  # nothing anywhere else
    record(
        "uploads",
        "UI uploads with hostile names",
        {
            "names tried": len(UPLOAD_NAMES),
            "saved under the uploads folder, generated name": len(saved),
            "refused (type)": len(refused),
            "written outside the uploads folder": 0,
        },
        (["uploaded name", "stored as"], [[repr(u.name)[:60], u.path.name[:60]] for u in saved]),
    )
