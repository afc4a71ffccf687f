"""Encoding speed: texts/s on short sentences and on 256-token passages, single-query latency, FLOP/s.

Every encoder is timed in the same process on the same texts: ``rates`` gives texts per wall second
and per process-CPU second (min / median / max over repeats, after a warm-up batch); latency is one
text per call. FLOPs per text are counted from the transformer's shape and the texts' real token
counts (matmuls only: 2 x multiply-adds), so texts/s x FLOPs/text is the useful FLOP/s achieved.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from tqdm.auto import tqdm

from jasper_rag.bench.stats import Latency, Spread, call_latency, rates
from jasper_rag.embedding import TextEncoder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextSamples:
    """The texts every encoder is timed on."""

    short: list[str]
    passages: list[str]
    queries: list[str]


def cut_to_tokens(tokenizer, texts: Sequence[str], tokens: int) -> list[str]:
    """The texts with at least ``tokens`` tokens, each cut to its first ``tokens`` tokens (decoded back)."""
    out = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        if len(ids) >= tokens:
            out.append(tokenizer.decode(ids[:tokens]))
    return out


def transformer_flops(config, tokens: int, head_dims: Sequence[int] = ()) -> float:
    """Matmul FLOPs of one text of ``tokens`` tokens through a BERT-style encoder (+ linear heads on the pooled vector).

    Per layer and token: Q, K, V, O projections (4 h^2), the feed-forward (2 h i) and attention
    scores and mixing (2 t h) multiply-adds; x2 for FLOPs.
    """
    hidden, inner, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_token = layers * (4 * hidden * hidden + 2 * hidden * inner + 2 * tokens * hidden)
    return 2.0 * (tokens * per_token + sum(hidden * dim for dim in head_dims))


@dataclass(frozen=True)
class EncoderSpeed:
    """Speed of one encoder."""

    encoder: str
    role: str
    short_per_s: Spread
    short_per_cpu_s: Spread
    passages_per_s: Spread
    passages_per_cpu_s: Spread
    query_latency: Latency
    flops_per_short: float | None
    flops_per_passage: float | None

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def measure_encoder(
    name: str,
    role: str,
    encoder: TextEncoder,
    samples: TextSamples,
    repeats: int,
    batch_size: int,
    flops: tuple[float, float] | None = None,
) -> EncoderSpeed:
    """Throughput on both text sets and single-query latency of one encoder."""
    log.info("timing %s (%s)", name, role)

    def run(texts: list[str]):
        return lambda: encoder.encode(texts, batch_size=batch_size)

    encoder.encode(samples.short[:4] + samples.passages[:4], batch_size=batch_size)  # warm-up: lazy init, allocator
    short_wall, short_cpu = rates(run(samples.short), len(samples.short), repeats)
    passage_wall, passage_cpu = rates(run(samples.passages), len(samples.passages), repeats)
    latency = call_latency(lambda i: encoder.encode([samples.queries[i]], batch_size=1), len(samples.queries))
    return EncoderSpeed(
        encoder=name,
        role=role,
        short_per_s=short_wall,
        short_per_cpu_s=short_cpu,
        passages_per_s=passage_wall,
        passages_per_cpu_s=passage_cpu,
        query_latency=latency,
        flops_per_short=flops[0] if flops else None,
        flops_per_passage=flops[1] if flops else None,
    )


def mean_tokens(tokenizer, texts: Sequence[str], max_length: int) -> float:
    """Mean tokens per text as the encoder runs it (special tokens included, truncated to ``max_length``)."""
    counts = [min(len(ids), max_length) for ids in tokenizer(list(texts), verbose=False)["input_ids"]]
    return sum(counts) / max(len(counts), 1)


def measure_encoders(
    encoders: Sequence[tuple[str, str, TextEncoder, tuple[float, float] | None]],
    samples: TextSamples,
    repeats: int,
    batch_size: int,
) -> list[EncoderSpeed]:
    """``measure_encoder`` for each ``(name, role, encoder, flops)``, in order."""
    return [
        measure_encoder(name, role, encoder, samples, repeats, batch_size, flops)
        for name, role, encoder, flops in tqdm(encoders, desc="encoders", unit="encoder")
    ]
