"""Repeated timings and their summaries (min / median / max, latency percentiles)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Spread:
    """Min, median and max of repeated measurements of one quantity."""

    min: float
    median: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise ValueError("no measurements to summarise")
        array = np.asarray(values, dtype=np.float64)
        return cls(float(array.min()), float(np.median(array)), float(array.max()))


@dataclass(frozen=True)
class Latency:
    """Per-call latency percentiles in milliseconds."""

    p50_ms: float
    p95_ms: float
    calls: int

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        if not seconds:
            raise ValueError("no calls to summarise")
        millis = 1000 * np.asarray(seconds, dtype=np.float64)
        return cls(float(np.percentile(millis, 50)), float(np.percentile(millis, 95)), len(millis))


@dataclass(frozen=True)
class Timed:
    """Wall and process-CPU seconds of one run (CPU time is what other jobs on the machine cannot inflate)."""

    wall: float
    cpu: float


def timed(action: Callable[[], object]) -> Timed:
    """Run ``action`` once and return its wall and process CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return Timed(time.perf_counter() - wall, time.process_time() - cpu)


def rates(action: Callable[[], object], items: int, repeats: int) -> tuple[Spread, Spread]:
    """Items per wall second and per CPU second over ``repeats`` runs of ``action`` (warm up first)."""
    runs = [timed(action) for _ in range(repeats)]
    return (
        Spread.of([items / max(run.wall, 1e-9) for run in runs]),
        Spread.of([items / max(run.cpu, 1e-9) for run in runs]),
    )


def call_latency(call: Callable[[int], object], calls: int, warmup: int = 2) -> Latency:
    """Latency of ``call(i)`` for ``i`` in ``range(calls)``, after ``warmup`` untimed calls."""
    for i in range(min(warmup, calls)):
        call(i)
    seconds = []
    for i in range(calls):
        start = time.perf_counter()
        call(i)
        seconds.append(time.perf_counter() - start)
    return Latency.of(seconds)
