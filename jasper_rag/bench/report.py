"""Reports from the bench payload: ``bench.json`` (every figure), ``bench.md`` (the summary, then the
detailed tables) and ``bench.png`` (plots). The markdown is rendered from the JSON payload only, so
``bench.md`` never holds a number the JSON does not. Nothing here writes the README.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from jasper_rag.files import atomic_write

log = logging.getLogger(__name__)

EAGER = "student (torch eager)"
THROUGHPUT_GOAL = 25.0  # x the ensemble, default CPU path
OVERHEAD_GOAL = 0.10
INGEST_SPEEDUP_GOAL = 2.0  # x the chunks/s of eager torch encoding batches in arrival order
INGEST_BASELINE_BACKEND = "torch"
GPU_SCRIPT = "jasper_rag/bench/gpu_check.py"

Payload = dict


def _spread(value: dict, digits: int = 1) -> str:
    """``median (min-max)``."""
    return f"{value['median']:.{digits}f} ({value['min']:.{digits}f}–{value['max']:.{digits}f})"


def _table(header: list[str], rows: list[list[str]], text_columns: int = 1) -> str:
    """A markdown table: the first ``text_columns`` columns left-aligned, the (numeric) rest right-aligned."""
    aligns = ["---"] * text_columns + ["---:"] * (len(header) - text_columns)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(aligns) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


# --------------------------------------------------------------------------- derived figures
def encoder_row(payload: Payload, name: str) -> dict | None:
    return next((row for row in payload.get("encoding", []) if row["encoder"] == name), None)


def ensemble_row(payload: Payload) -> dict | None:
    return next((row for row in payload.get("encoding", []) if row["role"] == "ensemble"), None)


def cpu_default(payload: Payload) -> str | None:
    """The fastest student variant (passages/s) whose quality holds (the candidate CPU default); None without
    encoding and quality results."""
    allowed = payload.get("qualifying_variants")
    students = [row for row in payload.get("encoding", []) if row["role"] == "student"]
    if allowed is None or not students:
        return None
    eligible = [row for row in students if row["encoder"].removeprefix("student (").removesuffix(")") in allowed]
    return max(eligible, key=lambda row: row["passages_per_s"]["median"])["encoder"] if eligible else None


def speedup(payload: Payload, name: str, key: str = "passages_per_s") -> float | None:
    row, ensemble = encoder_row(payload, name), ensemble_row(payload)
    if row is None or ensemble is None:
        return None
    return row[key]["median"] / ensemble[key]["median"]


def other_student_goals(payload: Payload) -> list[list[str]]:
    """The passage-throughput goal for each smaller student (``role`` "other student"), at ONNX int8, with
    its int8-vs-eager quality differences from the quality section."""
    labels = dict.fromkeys(
        row["encoder"].rsplit(" (", 1)[0] for row in payload.get("encoding", []) if row["role"] == "other student"
    )
    scores = {(row["variant"], row["task"]): row["score"] for row in payload.get("quality", [])}
    lines = []
    for label in labels:
        ratio, eager = speedup(payload, f"{label} (onnx int8)"), speedup(payload, f"{label} (torch eager)")
        if ratio is None or eager is None:
            continue
        deltas = [
            f"{task} {score - scores[(f'{label} torch eager', task)]:+.2f}"
            for (variant, task), score in scores.items()
            if variant == f"{label} onnx int8" and (f"{label} torch eager", task) in scores
        ]
        lines.append(
            [
                f">= {THROUGHPUT_GOAL:.0f}x the ensemble's throughput (256-token passages), {label} at ONNX int8",
                f"{ratio:.1f}x (eager: {eager:.1f}x)" + (f"; int8 vs eager {', '.join(deltas)}" if deltas else ""),
                "met" if ratio >= THROUGHPUT_GOAL else "not met",
            ]
        )
    return lines


def goals(payload: Payload) -> list[list[str]]:
    """One line per goal of the issue: goal, figure, met?"""
    lines = []
    default = cpu_default(payload)
    if default:
        for key, label in (("passages_per_s", "256-token passages"), ("short_per_s", "short sentences")):
            ratio = speedup(payload, default, key)
            eager = speedup(payload, EAGER, key)
            lines.append(
                [
                    f">= {THROUGHPUT_GOAL:.0f}x the ensemble's throughput ({label}), fastest CPU variant within 0.3 "
                    "on the bench's quality tasks",
                    f"{default}: {ratio:.1f}x (eager: {eager:.1f}x)",
                    "met" if ratio >= THROUGHPUT_GOAL else "not met",
                ]
            )
    quality = payload.get("quality", [])
    if quality and default:
        variant = default.removeprefix("student (").removesuffix(")")
        base = {row["task"]: row["score"] for row in quality if row["variant"] == "torch eager"}
        deltas = [
            f"{row['task']} {row['score'] - base[row['task']]:+.2f}" for row in quality if row["variant"] == variant
        ]
        lines.append(
            [
                f"quality of {default} within 0.3 of eager (bench tasks, full head; `make eval`: every head)",
                ", ".join(deltas),
                "met",
            ]
        )
    lines += other_student_goals(payload)
    eager = encoder_row(payload, EAGER)
    if eager and eager.get("flops_per_passage"):
        achieved = eager["passages_per_s"]["median"] * eager["flops_per_passage"] / 1e9
        peak = payload["machine"]["peak_gflops"]
        lines.append(
            [
                "eager student vs CPU peak (passages)",
                f"{achieved:.0f} of {peak:.0f} GFLOP/s ({achieved / peak:.0%})",
                "–",
            ]
        )
    for check in payload.get("compact", []):
        identical = check["identical_rankings"]
        lines.append(
            [
                f"compact exact storage @ {check['size']:,}: identical rankings, ~1/3 bytes",
                f"{identical:.1%} identical top-10 order ({check['identical_sets']:.1%} same sets), "
                f"{check['compact_dim']}-d, {check['bytes_ratio']:.3f} of the bytes",
                "met" if check["identical_sets"] == 1.0 and check["bytes_ratio"] < 0.34 else "not met",
            ]
        )
    ingestion = payload.get("ingestion")
    if ingestion:
        overheads = [max(row["overhead_wall"], row["overhead_cpu"]) for row in ingestion]
        lines.append(
            [
                f"ingestion overhead < {OVERHEAD_GOAL:.0%} (end to end vs sorted raw encoding)",
                "; ".join(
                    f"{row['backend']}: {row['overhead_wall']:.1%} wall, {row['overhead_cpu']:.1%} CPU"
                    for row in ingestion
                ),
                "met" if max(overheads) < OVERHEAD_GOAL else "not met",
            ]
        )
        baseline = ingest_baseline(ingestion)
        if baseline is not None:
            best = max(ingestion, key=lambda row: row["ingest_chunks_per_s"])
            default = next((row for row in ingestion if row["backend"] == payload.get("default_backend")), best)
            ratio = default["ingest_chunks_per_s"] / baseline
            fastest = (
                "" if default is best else f"; fastest {best['backend']}: {best['ingest_chunks_per_s'] / baseline:.2f}x"
            )
            lines.append(
                [
                    f"ingestion >= {INGEST_SPEEDUP_GOAL:g}x chunks/s of unsorted eager encoding, default backend",
                    f"{ratio:.2f}x ({default['backend']} end to end{fastest})",
                    "met" if ratio >= INGEST_SPEEDUP_GOAL else "not met",
                ]
            )
    sizes = sorted({row["size"] for row in payload.get("search", [])})
    if sizes:
        lines.append(
            [
                "search at 10k, 100k and 1M vectors",
                ", ".join(f"{size:,}" for size in sizes),
                "met" if {10_000, 100_000, 1_000_000} <= set(sizes) else "partly (see notes)",
            ]
        )
    lines.append(["GPU run (prepared script)", f"`{GPU_SCRIPT}`", "untested on hardware"])
    return lines


# --------------------------------------------------------------------------- tables
def machine_text(payload: Payload) -> str:
    machine = payload["machine"]
    versions = ", ".join(f"{name} {value}" for name, value in machine["versions"].items())
    return (
        f"{machine['cpu']}, {machine['cores']} cores; torch threads {machine['torch_threads']}, FAISS threads "
        f"{machine['faiss_threads']} (1 for single queries); peak float32 matmul {machine['peak_gflops']:.0f} "
        f"GFLOP/s; load average {machine['load_average'][0]:.1f} at start, {payload['load_average_after'][0]:.1f} "
        f"at end; {versions}. Run of {payload['generated_at']}, {payload['seconds']:.0f} s."
    )


def encoding_table(payload: Payload) -> str:
    peak = payload["machine"]["peak_gflops"]
    rows = []
    for row in payload.get("encoding", []):
        ratio = speedup(payload, row["encoder"])
        gflops = row["passages_per_s"]["median"] * row["flops_per_passage"] / 1e9 if row.get("flops_per_passage") else 0
        achieved = f"{gflops:.0f} ({gflops / peak:.0%})" if gflops else "–"
        rows.append(
            [
                row["encoder"],
                _spread(row["short_per_s"]),
                _spread(row["passages_per_s"], 2),
                f"{row['query_latency']['p50_ms']:.1f} / {row['query_latency']['p95_ms']:.1f}",
                f"{ratio:.1f}x" if ratio is not None else "–",
                achieved,
            ]
        )
    header = [
        "encoder",
        "short texts/s",
        "256-tok passages/s",
        "query p50 / p95 ms",
        "x ensemble",
        "GFLOP/s (of fp32 peak)",
    ]
    return _table(header, rows)


def quality_table(payload: Payload) -> str:
    quality = payload.get("quality", [])
    tasks = list(dict.fromkeys(row["task"] for row in quality))
    variants = list(dict.fromkeys(row["variant"] for row in quality))
    scores = {(row["variant"], row["task"]): row["score"] for row in quality}
    rows = [[variant, *(f"{scores[(variant, task)]:.2f}" for task in tasks)] for variant in variants]
    return _table(["variant", *tasks], rows)


COMPOSITES = ("compact", "funnel")  # search options that are not one store index


def search_table(payload: Payload, size: int, full_head_only: bool = False) -> str:
    """The search rows of one corpus size (``full_head_only``: options that answer with full-head scores)."""
    rows = []
    searches = payload.get("search", [])
    full_dim = max((row["dim"] for row in searches), default=None)
    for row in searches:
        if row["size"] != size or (full_head_only and row["dim"] != full_dim):
            continue
        overlap = row.get("full_overlap_at_10")
        rows.append(
            [
                row["head"],
                str(row["dim"]),
                row["index"],
                row["params"],
                f"{row['recall_at_10']:.3f}",
                "–" if overlap is None else f"{overlap:.3f}",
                f"{row['single_p50_ms']:.2f} / {row['single_p95_ms']:.2f}",
                _spread(row["batch_ms_per_query"], 3),
                f"{row['bytes_per_vector']:.0f}",
                f"{row['build_s']:.1f}",
            ]
        )
    header = [
        "head",
        "dim",
        "index type",
        "tuned setting",
        "recall@10",
        "top-10 overlap with full head",
        "1 query p50 / p95 ms",
        "batched ms/query",
        "bytes/vector",
        "build s",
    ]
    return _table(header, rows, text_columns=4)


def dropped_text(payload: Payload, size: int) -> str | None:
    """The index types no setting of which reached the recall target at ``size``, with their best try."""
    dropped = []
    for tuning in payload.get("search_tuning", []):
        if tuning["size"] == size and tuning["chosen"] is None:
            setting, recall = max(tuning["tried"], key=lambda tried: tried[1])
            dropped.append(f"{tuning['index']} on {tuning['head']} (best: {setting}, {recall:.3f})")
    if not dropped:
        return None
    return f"Dropped (no setting reached recall@10 {payload['search_target']} on the tuning queries): " + "; ".join(
        dropped
    )


def fastest_text(payload: Payload, size: int) -> str | None:
    """The full-head store index with the lowest single-query p50 among those in the table at ``size``."""
    full_dim = max((row["dim"] for row in payload.get("search", [])), default=None)
    candidates = [
        row
        for row in payload.get("search", [])
        if row["size"] == size and row["dim"] == full_dim and not row["index"].startswith(COMPOSITES)
    ]
    if not candidates:
        return None
    best = min(candidates, key=lambda row: row["single_p50_ms"])
    return (
        f"Fastest full-head store index in the table: {best['params']} ({best['single_p50_ms']:.2f} ms p50, "
        f"recall@10 {best['recall_at_10']:.3f}, {best['bytes_per_vector']:.0f} bytes/vector)."
    )


def ingest_baseline(rows: list[dict]) -> float | None:
    """Chunks/s of the simple way to encode: eager torch, batches in arrival order (None if not measured)."""
    row = next((row for row in rows if row["backend"] == INGEST_BASELINE_BACKEND), None)
    return None if row is None else row["raw_unsorted_chunks_per_s"]


def ingestion_table(payload: Payload) -> str:
    """Per backend: end to end and raw encoding chunks/s, each as a ratio to unsorted eager encoding."""
    rows = payload["ingestion"]
    baseline = ingest_baseline(rows)

    def rate(row: dict, name: str) -> str:
        value = row[f"{name}_chunks_per_s"]
        return f"{value:.1f}" if baseline is None else f"{value:.1f} ({value / baseline:.2f}x)"

    first = rows[0]
    title = (
        f"Ingestion: {first['documents']} SciFact documents as .txt files, {first['chunks']} chunks, "
        f"{first['heads']} heads, median of {first['repeats']} runs; chunks/s in wall time, (ratio to eager "
        "torch encoding in arrival-order batches); overhead: end to end vs sorted raw encoding:"
    )
    table = _table(
        ["backend", "end to end", "raw, arrival order", "raw, length-sorted", "overhead (wall)", "overhead (CPU)"],
        [
            [
                row["backend"],
                rate(row, "ingest"),
                rate(row, "raw_unsorted"),
                rate(row, "raw_sorted"),
                f"{row['overhead_wall']:.1%}",
                f"{row['overhead_cpu']:.1%}",
            ]
            for row in rows
        ],
    )
    padding = ", ".join(f"{name.replace('_', ' ')} {ratio:.3f}" for name, ratio in first["padding"].items())
    return f"{title}\n\n{table}\n\nPadded tokens per real token in the encoder's batches: {padding}."


def training_table(payload: Payload) -> str:
    rows = [
        [
            str(row["stage"]),
            str(row["batch_size"]),
            str(row["max_length"]),
            f"{row['trainable_parameters']:,}",
            _spread(row["examples_per_s"]),
        ]
        for row in payload.get("training", [])
    ]
    return _table(["stage", "batch", "max tokens", "trainable params", "examples/s"], rows)


def summary_markdown(payload: Payload) -> str:
    """Goals, encoding, quality, search (every head and index option), ingestion, training."""
    parts = [f"Student: {payload['student']}. Machine: {machine_text(payload)}", ""]
    parts += [f"> Note: {note}" for note in payload.get("notes", [])] + ([""] if payload.get("notes") else [])
    parts += [_table(["goal", "measured", "status"], goals(payload), text_columns=3), ""]
    if payload.get("encoding"):
        parts += [encoding_table(payload), ""]
    if payload.get("quality"):
        parts += ["Quality of the student's CPU variants (eval harness, x100):", "", quality_table(payload), ""]
    sizes = sorted({row["size"] for row in payload.get("search", [])})
    for size in sizes:
        real = next(row["real_vectors"] for row in payload["search"] if row["size"] == size)
        made = "the rest perturbed copies of them" if real < size else "all real"
        parts += [f"Search, {size:,} vectors ({real:,} real, {made}):", "", search_table(payload, size), ""]
        parts += [f"{line}\n" for line in (fastest_text(payload, size), dropped_text(payload, size)) if line]
    if payload.get("ingestion"):
        parts += [ingestion_table(payload), ""]
    if payload.get("training"):
        parts += [f"Training (recipe `{payload['training_recipe']}`, CPU):", "", training_table(payload), ""]
    return "\n".join(parts).rstrip()


def full_markdown(payload: Payload, plot_name: str) -> str:
    header = [
        "# Performance",
        "",
        "Generated by `make bench` (`jasper-rag bench`) from `bench.json`. Spreads are median (min–max) over "
        "repeated runs; rates are per wall-clock second (per-CPU-second figures are in the JSON). GFLOP/s = "
        "passages/s x matmul FLOPs per passage; int8 runs integer matmuls, so its share of the fp32 peak can "
        "pass 100%.",
        "",
        "",
    ]
    return "\n".join(header) + summary_markdown(payload) + f"\n\n![bench]({plot_name})\n"


# --------------------------------------------------------------------------- files
def write_plot(payload: Payload, path: Path) -> None:
    """Throughput per encoder, and single-query latency against recall@10 per index option."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (speed_axis, search_axis) = plt.subplots(1, 2, figsize=(13, 5))
    encoding = payload.get("encoding", [])
    if encoding:
        names = [row["encoder"] for row in encoding]
        positions = range(len(names))
        speed_axis.barh(
            [p - 0.2 for p in positions], [r["short_per_s"]["median"] for r in encoding], 0.4, label="short texts/s"
        )
        speed_axis.barh(
            [p + 0.2 for p in positions],
            [r["passages_per_s"]["median"] for r in encoding],
            0.4,
            label="256-token passages/s",
        )
        speed_axis.set_yticks(list(positions), names, fontsize=8)
        speed_axis.set_xscale("log")
        speed_axis.set(xlabel="texts per second (log)", title="encoding throughput (median)")
        speed_axis.legend(fontsize=8)
    search = payload.get("search", [])
    markers = dict(zip(sorted({row["size"] for row in search}), "os^D", strict=False))
    options = sorted({row["index"] for row in search})
    colours = {option: plt.get_cmap("tab10")(i % 10) for i, option in enumerate(options)}
    for row in search:
        search_axis.scatter(
            row["single_p50_ms"],
            row["recall_at_10"],
            color=colours[row["index"]],
            marker=markers.get(row["size"], "o"),
            s=20 + row["dim"] / 20,
        )
    for option in options:
        search_axis.scatter([], [], color=colours[option], label=option)
    for size, marker in markers.items():
        search_axis.scatter([], [], color="grey", marker=marker, label=f"{size:,} vectors")
    search_axis.set(xscale="log", xlabel="single-query p50 ms (1 thread, log)", ylabel="recall@10 vs exact full head")
    search_axis.set_title("search: latency vs recall (marker size ~ dim)")
    search_axis.grid(alpha=0.3)
    if search:
        search_axis.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)


def write_json(payload: dict, json_path: Path) -> Path:
    """A bench payload as JSON, written atomically (reports are rendered from this file as written)."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(json_path, lambda tmp: tmp.write_text(json.dumps(payload, indent=1) + "\n"))
    return json_path


def render_markdown(json_path: Path, render: Callable[[dict], str]) -> list[Path]:
    """``render`` the payload in ``json_path`` into the ``.md`` beside it; returns both paths."""
    md_path = json_path.with_suffix(".md")
    payload = json.loads(json_path.read_text())
    atomic_write(md_path, lambda tmp: tmp.write_text(render(payload)))
    return [json_path, md_path]


def write_reports(payload: Payload, output_dir: Path) -> list[Path]:
    """bench.json, then bench.md / bench.png rendered from the JSON as written."""
    return render_from_json(write_json(payload, output_dir / "bench.json"))


def render_from_json(json_path: Path) -> list[Path]:
    """Render bench.md and bench.png (next to ``json_path``) from a bench.json."""
    payload = json.loads(json_path.read_text())
    md_path, png_path = json_path.with_suffix(".md"), json_path.with_suffix(".png")
    write_plot(payload, png_path)
    atomic_write(md_path, lambda tmp: tmp.write_text(full_markdown(payload, png_path.name)))
    return [json_path, md_path, png_path]
