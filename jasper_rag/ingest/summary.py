"""What an ingestion run did, file by file, and the closing summary printed to the user."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from jasper_rag.cli_support import EXIT_PARTIAL

KIND_LABELS = {"chunk": "chunks", "faq": "FAQ entries", "image": "images"}
UNCHANGED = "unchanged"
REMOVED = "removed"


@dataclass(frozen=True)
class FileOutcome:
    """One file's result: ``status`` is a document status, ``unchanged`` or ``removed``."""

    path: str
    status: str
    reason: str | None = None
    entries: int = 0


@dataclass
class IngestSummary:
    outcomes: list[FileOutcome] = field(default_factory=list)
    embedded: Counter[str] = field(default_factory=Counter)  # entries embedded in this run, per kind
    seconds: float = 0.0

    def counts(self) -> Counter[str]:
        return Counter(outcome.status for outcome in self.outcomes)

    def failed(self) -> list[FileOutcome]:
        return [outcome for outcome in self.outcomes if outcome.status == "failed"]

    @property
    def exit_code(self) -> int:
        """0 when every file went in (or was unchanged), 3 when some failed."""
        return EXIT_PARTIAL if self.failed() else 0

    def render(self) -> str:
        total = sum(self.embedded.values())
        rate = total / self.seconds if self.seconds > 0 else 0.0
        kinds = (
            ", ".join(f"{count} {KIND_LABELS.get(kind, kind)}" for kind, count in sorted(self.embedded.items()))
            or "nothing"
        )
        lines = [f"{len(self.outcomes)} files; embedded {kinds} in {self.seconds:.1f} s ({rate:.1f} entries/s)"]
        lines += [f"  {status:<13s}{count:>6d}" for status, count in sorted(self.counts().items())]
        not_embedded = [o for o in self.outcomes if o.status == "not embedded"]
        if not_embedded:
            lines.append(f"not embedded ({len(not_embedded)}): {not_embedded[0].reason}")
        failed = self.failed()
        if failed:
            lines.append(f"failed ({len(failed)}):")
            lines += [f"  {outcome.path}: {outcome.reason}" for outcome in failed]
        return "\n".join(lines)
