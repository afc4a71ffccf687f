"""Search options: one validated record used by the searcher, the CLI, the LangChain retriever and the UI.

``mode``: ``dense`` (the model's vectors), ``lexical`` (BM25 over the words) or ``hybrid`` (both,
fused; the default). ``fusion``: ``mix`` (a weighted sum of the two scores each scaled by its best
candidate's, ``dense_weight`` on the dense side; the default), ``minmax`` (the same sum of min-max-scaled
scores) or ``rrf`` (reciprocal-rank fusion with constant ``rrf_k``). The weights are the standard
settings (equal mix; RRF's k = 60), not tuned on any test queries; ``docs/search.md`` says how ``mix``
was chosen over ``minmax``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal, get_args

Mode = Literal["dense", "lexical", "hybrid"]
Fusion = Literal["mix", "minmax", "rrf"]
MODES: tuple[str, ...] = get_args(Mode)
FUSIONS: tuple[str, ...] = get_args(Fusion)
DEFAULT_SHORTLIST = 100


@dataclass(frozen=True, kw_only=True)
class SearchOptions:
    """Everything a search can be told besides its query; invalid values raise ``ValueError`` naming the field."""

    k: int = 10
    mode: Mode = "hybrid"
    fusion: Fusion = "mix"
    dense_weight: float = 0.5
    rrf_k: int = 60
    dim: int | None = None
    kinds: tuple[str, ...] | None = None
    file_types: tuple[str, ...] | None = None
    path_prefix: str | None = None
    funnel: bool = False
    funnel_dim: int | None = None
    shortlist: int = DEFAULT_SHORTLIST

    def __post_init__(self) -> None:
        for name in ("kinds", "file_types"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, (value,))
            elif value is not None:
                object.__setattr__(self, name, tuple(value))
        checks = {
            "k": self.k >= 1,
            "mode": self.mode in MODES,
            "fusion": self.fusion in FUSIONS,
            "dense_weight": 0.0 <= self.dense_weight <= 1.0,
            "rrf_k": self.rrf_k >= 1,
            "dim": self.dim is None or self.dim >= 1,
            "funnel_dim": self.funnel_dim is None or self.funnel_dim >= 1,
            "shortlist": self.shortlist >= 1,
        }
        wanted = {
            "k": "a positive integer",
            "mode": f"one of {', '.join(MODES)}",
            "fusion": f"one of {', '.join(FUSIONS)}",
            "dense_weight": "between 0 and 1",
            "rrf_k": "a positive integer",
            "dim": "a positive integer or None",
            "funnel_dim": "a positive integer or None",
            "shortlist": "a positive integer",
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"search option '{name}' must be {wanted[name]}, not {getattr(self, name)!r}")

    def with_changes(self, **changes: Any) -> SearchOptions:
        """A copy with some options changed (unknown names raise ``ValueError``; ``None`` values are kept as given)."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise ValueError(f"unknown search option(s): {', '.join(unknown)}; known: {', '.join(option_names())}")
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def option_names() -> list[str]:
    return [f.name for f in fields(SearchOptions)]
