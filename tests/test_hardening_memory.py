"""Hardening: chunking a page costs bounded memory, whatever the page size (tokenized slice by slice).

Each page size is chunked in a fresh subprocess with the packaged model's tokenizer, as ingestion cuts
it (254 tokens, overlap 32); the increment is the process's peak RSS (``VmHWM``, reset just before
``split``; it counts the tokenizer's Rust allocations) less its RSS then, the page text already in memory. It
includes the chunks returned (~1.15x the page's characters), which the pipeline keeps anyway.

Sizes measured: ``JASPER_TEST_MEMORY_SIZES`` (MiB, comma-separated; default ``1,20`` to stay near a
minute on 2 cores); the ledger's table was written with ``1,5,20,50``. The "before" column is the same
script run once on commit c4f1b4e, which tokenized the whole page at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from jasper_rag.ingest import chunking
from tests.conftest import ROOT
from tests.reliability_report import record

BEFORE_COMMIT = "c4f1b4e"
BEFORE_MIB = {1: 151, 5: 759, 20: 2711, 50: 6209}  # peak increment on BEFORE_COMMIT, this script, same machine
BEFORE_SECONDS = {1: 6.8, 5: 31.3, 20: 108.2, 50: 192.7}  # (2 cores shared with other test runs)
BEFORE_CHUNKS = {1: 1_069, 5: 5_345, 20: 21_380, 50: 53_450}
NOT_MEASURED = "not in this run"
FIXED_MIB = 64  # allowed beyond the chunks themselves: tokenizer, one slice, interpreter
CHUNKS_PER_PAGE_MIB = 2  # the returned chunks: their text (1.15x the page) and their objects

MEASURE = r"""
import json, random, sys, time
from transformers import AutoTokenizer
from jasper_rag.ingest.chunking import Chunker
from jasper_rag.weights import model_path

size_mib = float(sys.argv[1])
tokenizer = AutoTokenizer.from_pretrained(model_path("minilm-l6"))
chunker = Chunker(tokenizer, 256 - tokenizer.num_special_tokens_to_add(pair=False), 32)
chunker.max_page_chars = 10**9  # measured beyond the default page limit
rng = random.Random(0)
words = ("the student model distils teacher vectors into smaller heads while search ranks chunks of "
         "pages by cosine similarity over 2048 tokens per batch").split()
parts = []
for i in range(200_000):
    parts.append(rng.choice(words))
    parts.append(". " if rng.random() < 0.07 else "\n\n" if rng.random() < 0.01 else " ")
block = "".join(parts)[: 2**20]
text = "".join([block] * (int(size_mib) + 1))[: int(size_mib * 2**20)]
del parts, block
chunker.split("warm the tokenizer up.")

def status_kib(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))

# The peak must start here: ru_maxrss would carry the forking test process's own peak (GBs in a full run).
with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")  # resets VmHWM, the peak RSS
before = status_kib("VmRSS")
started = time.perf_counter()
spans = chunker.split(text)
seconds = time.perf_counter() - started
peak = status_kib("VmHWM")
chunk_chars = sum(len(span.text) for span in spans)
print(json.dumps({"chunks": len(spans), "chunk_chars": chunk_chars, "seconds": round(seconds, 1),
                  "increment_mib": round((peak - before) / 1024), "page_chars": len(text)}))
"""


def measure(size_mib: int) -> dict:
    """Chunk a page of ``size_mib`` MiB in a fresh process; its peak memory increment and time."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JASPER_DEVICE": "cpu"}
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(size_mib)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_chunking_memory_is_bounded_whatever_the_page_size():
    sizes = [int(size) for size in os.environ.get("JASPER_TEST_MEMORY_SIZES", "1,20").split(",")]
    results = {size: measure(size) for size in sizes}
    slice_chars = getattr(chunking, "SLICE_CHARS", 0)  # 0: a chunker that tokenizes whole pages
    rows = []
    for size in sorted(set(BEFORE_MIB) | set(results)):
        after = results.get(size, {})
        rows.append(
            [
                size,
                f"{BEFORE_CHUNKS[size]:,}" if size in BEFORE_CHUNKS else "",
                f"{after['chunks']:,}" if after else NOT_MEASURED,
                BEFORE_MIB.get(size, ""),
                after.get("increment_mib", NOT_MEASURED),
                round(FIXED_MIB + CHUNKS_PER_PAGE_MIB * size),
                BEFORE_SECONDS.get(size, ""),
                after.get("seconds", NOT_MEASURED),
            ]
        )
    record(
        "memory",
        "Peak memory per page size",
        {
            "what": "chunking one page of prose with the minilm-l6 tokenizer (254 tokens, overlap 32), a process each",
            "measure": "peak RSS (VmHWM, reset before split) less RSS before split, the page already in memory; "
            "includes the chunks",
            "design": f"the page is tokenized in slices of {slice_chars:,} characters cut at whitespace; "
            "the last word of a slice is tokenized again with the next, so the chunks are the whole page's",
            "before": f"commit {BEFORE_COMMIT}, the whole page tokenized with offsets at once",
            "page limit": "JASPER_INGEST_MAX_PAGE_CHARS, default 10,000,000 characters: a longer page fails its file",
        },
        (
            [
                *("page (MiB)", "chunks before", "chunks after", "before (MiB)", "after (MiB)", "bound (MiB)"),
                *("before: s", "after: s"),
            ],
            rows,
        ),
    )
    for size, result in results.items():
        assert result["page_chars"] == size * 2**20
        if size in BEFORE_CHUNKS:  # pages of many slices: still the chunks of the whole page tokenized at once
            assert result["chunks"] == BEFORE_CHUNKS[size]
        bound = FIXED_MIB + CHUNKS_PER_PAGE_MIB * size
        assert result["increment_mib"] < bound, f"{size} MiB page: +{result['increment_mib']} MiB > {bound} MiB"
