"""Sizing from measured rows: bytes per vector per head and index type, disk and memory per million
chunks, where one host stops, and a worked plan for a large corpus (query nodes and replicas, parallel
writers, Ray workers, ingest hours).

Nothing here is measured: every figure is computed from the JSON reports of ``make bench``
(``bench.json``: bytes per vector, query latency, ingestion chunks/s), ``make bench-hybrid``
(``hybrid.json``: SQL and lexical bytes per chunk, single-writer commit rate) and ``make bench-ray``
(``ray-ingest.json``: chunks/s per Ray worker). The plan's inputs (corpus size, memory per node, the share
of it for vectors, replicas, ingest hours) are arguments and are printed beside the result.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from jasper_rag.bench.report import _table, render_markdown, write_json

SCAN_INDEXES = ("Flat", "SQ", "compact", "funnel (compact)")  # they scan every vector: time linear in the corpus
GIB = 2**30
MILLION = 1_000_000


class SizingInputError(ValueError):
    """A report the sizing needs is missing or unreadable."""


@dataclass(frozen=True)
class SizingPlan:
    """What the worked plan is for: the corpus size and the hardware it has to fit."""

    chunks: int = 100 * MILLION
    node_memory_gib: float = 64.0
    vector_share: float = 0.7  # of a node's memory, for vectors (the rest: OS, SQL cache, lexical, search)
    replicas: int = 2
    ingest_hours: float = 24.0


@dataclass(frozen=True)
class Layout:
    """Which index of which head a deployment keeps, as rows of bench.json's search table."""

    name: str
    parts: tuple[tuple[str, str], ...]  # (head, index column of bench.json) per index kept in memory
    query: tuple[str, str]  # the (head, index) row whose latency a query pays


LAYOUTS = (
    Layout(
        "every head exact (the default store)",
        tuple((h, "Flat") for h in ("full", "d256", "d128", "d64")),
        ("full", "Flat"),
    ),
    Layout("full head HNSW32 only", (("full", "HNSW32"),), ("full", "HNSW32")),
    Layout("full head SQ8 only", (("full", "SQ"),), ("full", "SQ")),
    Layout(
        "funnel: d64 exact + compact full re-score",
        (("d64->full", "funnel (compact)"),),
        ("d64->full", "funnel (compact)"),
    ),
)


def load_report(folder: Path, name: str, required: bool = True) -> dict | None:
    """``folder/name`` as JSON; a missing optional report is None."""
    path = folder / name
    if not path.is_file():
        if required:
            raise SizingInputError(f"{path} not found: run the bench that writes it first (docs/scale.md)")
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SizingInputError(f"{path}: not a readable report ({error})") from error


def largest_rows(bench: dict) -> dict[tuple[str, str], dict]:
    """(head, index) -> its search row at the largest corpus size it was measured at."""
    rows: dict[tuple[str, str], dict] = {}
    for row in bench.get("search", []):
        key = (row["head"], row["index"])
        if key not in rows or row["size"] > rows[key]["size"]:
            rows[key] = row
    return rows


def per_chunk_extras(hybrid: dict) -> dict[str, float]:
    """Bytes per chunk of the SQL database and the lexical index, and one writer's commit rate, at the
    largest size of the hybrid bench."""
    largest = max(hybrid["sizes"], key=lambda s: s["size"])
    build, chunks = largest["build"], largest["size"]
    sizes = build["sizes_mib"]
    return {
        "chunks": chunks,
        "sql_bytes": sizes["sqlite"] * 2**20 / chunks,
        "lexical_bytes": sizes["tantivy"] * 2**20 / chunks,
        "commit_chunks_per_s": chunks / build["commit_s_total"],
        "mean_words": largest.get("mean_words", 0.0),
    }


def ray_rates(ray: dict | None) -> dict[str, float] | None:
    """Chunks/s of one Ray worker and the scaling efficiency of two (rate with 2 / twice the rate with 1)."""
    if not ray:
        return None
    by_workers = {row["workers"]: row["chunks_per_s"] for row in ray.get("ray", []) if "workers" in row}
    if 1 not in by_workers:
        return None
    two = by_workers.get(2)
    return {
        "one_worker": by_workers[1],
        "two_workers": two or math.nan,
        "efficiency": two / (2 * by_workers[1]) if two else 1.0,
        "local": ray.get("local", {}).get("chunks_per_s", math.nan),
    }


def layout_rows(bench: dict, extras: dict[str, float], plan: SizingPlan) -> list[dict]:
    """Each layout's bytes per chunk, memory per million, what one node holds, and the plan's node count."""
    rows = largest_rows(bench)
    out = []
    for layout in LAYOUTS:
        if any(part not in rows for part in layout.parts) or layout.query not in rows:
            continue
        vector_bytes = sum(rows[part]["bytes_per_vector"] for part in layout.parts)
        query = rows[layout.query]
        scan = all(index in SCAN_INDEXES for _, index in layout.parts)
        node_budget = plan.node_memory_gib * GIB * plan.vector_share
        total = vector_bytes * plan.chunks
        out.append(
            {
                "layout": layout.name,
                "vector_bytes_per_chunk": vector_bytes,
                "vector_gib_per_million": vector_bytes * MILLION / GIB,
                "disk_gib_per_million": (vector_bytes + extras["sql_bytes"] + extras["lexical_bytes"]) * MILLION / GIB,
                "chunks_per_node": int(node_budget / vector_bytes),
                "scan_p50_ms_at_node_capacity": query["single_p50_ms"] * int(node_budget / vector_bytes) / query["size"]
                if scan
                else None,
                "query_p50_ms": query["single_p50_ms"],
                "query_measured_at": query["size"],
                "recall_at_10": query["recall_at_10"],
                "linear_scan": scan,
                "plan_vector_gib": total / GIB,
                "plan_nodes": math.ceil(total * plan.replicas / node_budget),
            }
        )
    return out


def ingest_plan(extras: dict[str, float], rates: dict[str, float] | None, bench: dict, plan: SizingPlan) -> dict:
    """The chunks/s the plan needs, writers and Ray workers to reach it, and the hours one writer takes."""
    needed = plan.chunks / (plan.ingest_hours * 3600)
    single = bench.get("ingestion") or []
    default = next(
        (row for row in single if row["backend"] == bench.get("default_backend")), single[0] if single else None
    )
    out = {
        "needed_chunks_per_s": needed,
        "writer_chunks_per_s": extras["commit_chunks_per_s"],
        "writers": math.ceil(needed / extras["commit_chunks_per_s"]),
        "one_writer_hours": plan.chunks / extras["commit_chunks_per_s"] / 3600,
        "single_process_chunks_per_s": default["ingest_chunks_per_s"] if default else None,
    }
    if default:
        out["single_process_hours"] = plan.chunks / default["ingest_chunks_per_s"] / 3600
    if rates:
        per_worker = rates["one_worker"] * min(rates["efficiency"], 1.0)
        out.update(ray_one_worker=rates["one_worker"], ray_efficiency=rates["efficiency"])
        out["ray_workers"] = math.ceil(needed / per_worker)
    return out


def build_sizing(folder: Path, plan: SizingPlan) -> dict:
    """The sizing payload from the reports in ``folder``."""
    bench = load_report(folder, "bench.json")
    hybrid = load_report(folder, "hybrid.json")
    ray = load_report(folder, "ray-ingest.json", required=False)
    extras = per_chunk_extras(hybrid)
    rates = ray_rates(ray)
    return {
        "plan": asdict(plan),
        "sources": {
            "bench.json": bench.get("generated_at"),
            "hybrid.json": hybrid.get("generated_at"),
            "ray-ingest.json": ray.get("generated_at") if ray else None,
        },
        "machine": bench.get("machine", {}).get("cpu"),
        "heads": [
            {
                "head": row["head"],
                "dim": row["dim"],
                "index": row["index"] if row["index"] == row["params"] else f"{row['index']}: {row['params']}",
                "bytes_per_vector": row["bytes_per_vector"],
                "gib_per_million": row["bytes_per_vector"] * MILLION / GIB,
                "measured_at": row["size"],
            }
            for row in largest_rows(bench).values()
        ],
        "per_chunk": extras,
        "layouts": layout_rows(bench, extras, plan),
        "ingest": ingest_plan(extras, rates, bench, plan),
        "ray": rates,
    }


def _n(value: float | None, digits: int = 1) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.{digits}f}"


def sizing_markdown(payload: dict) -> str:
    """reports/sizing.md from its JSON."""
    plan, extras, ingest = payload["plan"], payload["per_chunk"], payload["ingest"]
    sources = ", ".join(f"`{name}` ({when or 'not run'})" for name, when in payload["sources"].items())
    heads = _table(
        ["head", "dim", "index (tuned setting)", "bytes / vector", "GiB / million", "measured at"],
        [
            [
                h["head"],
                str(h["dim"]),
                h["index"],
                _n(h["bytes_per_vector"], 0),
                _n(h["gib_per_million"], 2),
                f"{h['measured_at']:,}",
            ]
            for h in payload["heads"]
        ],
        text_columns=3,
    )
    layouts = _table(
        [
            "layout",
            "vector bytes / chunk",
            "RAM GiB / million",
            "disk GiB / million (+ SQL, lexical)",
            "chunks per node",
            "query p50 ms (at size)",
            "p50 ms at node capacity (scans)",
            "recall@10",
            f"GiB at {plan['chunks']:,}",
            f"nodes ({plan['replicas']} replicas)",
        ],
        [
            [
                r["layout"],
                _n(r["vector_bytes_per_chunk"], 0),
                _n(r["vector_gib_per_million"], 2),
                _n(r["disk_gib_per_million"], 2),
                f"{r['chunks_per_node']:,}",
                f"{_n(r['query_p50_ms'], 2)} ({r['query_measured_at']:,})",
                _n(r["scan_p50_ms_at_node_capacity"], 0),
                _n(r["recall_at_10"], 3),
                _n(r["plan_vector_gib"], 0),
                str(r["plan_nodes"]),
            ]
            for r in payload["layouts"]
        ],
    )
    ray_line = (
        f"- Ray: one worker {_n(ingest['ray_one_worker'])} chunks/s, two workers keep "
        f"{ingest['ray_efficiency']:.0%} of twice that: **{ingest['ray_workers']:,} one-CPU workers** (as measured) "
        f"reach {_n(ingest['needed_chunks_per_s'])} chunks/s."
        if "ray_workers" in ingest
        else "- Ray: no `ray-ingest.json` yet (`make bench-ray`), so no worker count."
    )
    return "\n".join(
        [
            "# Sizing from measured rows",
            "",
            f"Computed by `make sizing` from {sources}; measured on {payload['machine']}. Nothing on this page "
            "is measured by the sizing itself: it multiplies measured rows. Chunks average "
            f"{_n(extras['mean_words'], 0)} words.",
            "",
            "## Bytes per vector, per head and index type",
            "",
            heads,
            "",
            "## Per chunk beside the vectors",
            "",
            f"- SQL metadata (SQLite, chunk text included): {_n(extras['sql_bytes'], 0)} bytes per chunk; lexical "
            f"index (tantivy): {_n(extras['lexical_bytes'], 0)} bytes per chunk (at {extras['chunks']:,} chunks).",
            f"- One writer commits {_n(extras['commit_chunks_per_s'], 0)} chunks/s with the vectors already computed "
            "(SQL + FAISS + lexical in one commit).",
            "",
            f"## Layouts: one node of {plan['node_memory_gib']:g} GiB, {plan['vector_share']:.0%} of it for vectors",
            "",
            "Flat, SQ8 and compact indexes scan every vector, so their time grows linearly with the corpus: such a "
            "layout's latency at the node's capacity is its measured latency times (capacity / measured size), "
            "which shows where one host's scan stops being interactive. HNSW's grows far slower and is not "
            "extrapolated.",
            "",
            layouts,
            "",
            f"## Worked plan: {plan['chunks']:,} chunks in {plan['ingest_hours']:g} hours",
            "",
            f"- Needed: {_n(ingest['needed_chunks_per_s'])} chunks/s. One process of this machine ingests "
            f"{_n(ingest['single_process_chunks_per_s'])} chunks/s end to end: "
            f"{_n(ingest.get('single_process_hours'), 0)} hours alone.",
            ray_line,
            f"- Writing: one writer's {_n(ingest['writer_chunks_per_s'], 0)} chunks/s takes "
            f"{_n(ingest['one_writer_hours'], 1)} hours for the corpus; {ingest['writers']} parallel writer(s) reach "
            "the rate; a store takes one writer at a time, so that many stores, each with its own writer.",
            "- Memory: the layouts table's last two columns (vectors only; replicas multiply it).",
            "",
        ]
    )


def run_sizing(folder: Path, plan: SizingPlan) -> list[Path]:
    """Write sizing.json and sizing.md into ``folder`` from the reports there."""
    return render_markdown(write_json(build_sizing(folder, plan), folder / "sizing.json"), sizing_markdown)
