"""Split page text into chunks that fit the student model, measured with its own tokenizer.

Windows of at most ``max_tokens`` tokens, consecutive windows sharing ``overlap`` tokens. A window
ends after the last sentence end (``. ! ?``) in its final 40% when there is one, else at a word
boundary; it starts at a word boundary. Each chunk keeps its exact character span of the page:
``chunk.text == page_text[chunk.char_start:chunk.char_end]``.
"""

from __future__ import annotations

from dataclasses import dataclass

SENTENCE_ENDS = (".", "!", "?")
SNAP_REGION = 0.4  # fraction of a window (at its end) searched for a better place to cut


@dataclass(frozen=True)
class TextSpan:
    text: str
    char_start: int
    char_end: int


class Chunker:
    """Token-window chunking with overlap, by the given (fast) tokenizer."""

    def __init__(self, tokenizer, max_tokens: int, overlap: int) -> None:
        if overlap >= max_tokens:
            raise ValueError(f"chunk overlap ({overlap}) must be smaller than the chunk size ({max_tokens})")
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.overlap = overlap

    @classmethod
    def for_encoder(cls, encoder, chunk_tokens: int, overlap: int) -> Chunker:
        """Chunks that fit ``encoder``: at most its max length, less the special tokens it adds."""
        tokenizer = encoder.tokenizer
        room = min(chunk_tokens, encoder.config.max_length) - tokenizer.num_special_tokens_to_add(pair=False)
        return cls(tokenizer, room, min(overlap, room // 2))

    def split(self, text: str) -> list[TextSpan]:
        """The chunks of one page (none for blank text)."""
        offsets = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)[
            "offset_mapping"
        ]
        offsets = [(start, end) for start, end in offsets if end > start]
        spans, start = [], 0
        while start < len(offsets):
            end = self._cut(text, offsets, start)
            char_start, char_end = offsets[start][0], offsets[end - 1][1]
            spans.append(TextSpan(text[char_start:char_end], char_start, char_end))
            if end == len(offsets):
                break
            start = self._word_start(offsets, max(end - self.overlap, start + 1), end)
        return spans

    def _cut(self, text: str, offsets: list[tuple[int, int]], start: int) -> int:
        """End (exclusive token index) of the window that begins at ``start``."""
        end = min(start + self.max_tokens, len(offsets))
        if end == len(offsets):
            return end
        region = range(end - 1, max(start, end - int(self.max_tokens * SNAP_REGION)) - 1, -1)
        for i in region:
            if text[offsets[i][0] : offsets[i][1]] in SENTENCE_ENDS and offsets[i + 1][0] > offsets[i][1]:
                return i + 1
        for i in region:
            if offsets[i + 1][0] > offsets[i][1]:  # whitespace between tokens i and i+1: a word boundary
                return i + 1
        return end

    @staticmethod
    def _word_start(offsets: list[tuple[int, int]], start: int, limit: int) -> int:
        """Move ``start`` forward to the first token that begins a word (not past ``limit``)."""
        while start < limit and offsets[start][0] == offsets[start - 1][1]:
            start += 1
        return start
