"""Loss curves of a training run: one panel per loss term, one line per stage."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path


def plot_curves(log_files: Sequence[Path], out_file: Path) -> Path | None:
    """Draw every logged loss term of the given ``log.jsonl`` files into a PNG (atomic write)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for file in log_files:
        if not file.is_file():
            continue
        for line in file.read_text().splitlines():
            record = json.loads(line)
            for key, value in record.items():
                if key not in {"stage", "step", "lr", "seconds", "grad_norm"} and isinstance(value, float):
                    series[key][record["stage"]].append((record["step"], value))
    if not series:
        return None
    names = sorted(series, key=lambda n: (n != "total", n))
    columns = min(3, len(names))
    rows = (len(names) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3 * rows), squeeze=False)
    for axis, name in zip(axes.flat, names, strict=False):
        for stage, points in series[name].items():
            steps, values = zip(*points, strict=True)
            axis.plot(steps, values, label=stage, linewidth=1)
        axis.set_title(name, fontsize=9)
        axis.set_xlabel("step", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.legend(fontsize=7)
    for axis in list(axes.flat)[len(names) :]:
        axis.set_visible(False)
    figure.tight_layout()
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(f".{out_file.name}.tmp.png")
    figure.savefig(tmp, dpi=110)
    plt.close(figure)
    tmp.replace(out_file)
    return out_file
