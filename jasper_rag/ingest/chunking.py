"""Split page text into chunks that fit the student model, measured with its own tokenizer.

Windows of at most ``max_tokens`` tokens, consecutive windows sharing ``overlap`` tokens. A window
ends after the last sentence end (``. ! ?``) in its final 40% when there is one, else at a word
boundary; it starts at a word boundary. Each chunk keeps its exact character span of the page:
``chunk.text == page_text[chunk.char_start:chunk.char_end]``.

Memory stays bounded whatever the page size: the page is tokenized in slices of about
``slice_chars`` characters (tokenizing a whole page with offsets costs ~130 bytes per character: 2.6 GiB
for a 20 MiB page), and only the tokens of the window being cut are kept. A slice ends at whitespace;
its last word (from the last whitespace between two tokens) is tokenized again at the start of the
next slice, so the tokens, hence the chunks, are those of the whole page tokenized at once, exactly so
for tokenizers whose words never span whitespace (BERT's WordPiece: tests compare both). Only a slice
with no whitespace between any two of its tokens (a huge unbroken run) is cut at punctuation, or plainly.
A page longer than ``max_page_chars`` (``JASPER_INGEST_MAX_PAGE_CHARS``) is refused with
``PageTooLong``, a ``LoadError``: its file fails with that reason, as a file over the size limit does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice

from jasper_rag.ingest.loaders import LoadError

SENTENCE_ENDS = (".", "!", "?")
SNAP_REGION = 0.4  # fraction of a window (at its end) searched for a better place to cut
SLICE_CHARS = 65_536  # characters tokenized at once (about 10 MB of tokenizer memory)

Offsets = list[tuple[int, int]]


class PageTooLong(LoadError):
    """A page with more characters than the chunker accepts."""


@dataclass(frozen=True)
class TextSpan:
    text: str
    char_start: int
    char_end: int


class Chunker:
    """Token-window chunking with overlap, by the given (fast) tokenizer.

    ``max_page_chars``: longest page accepted (None: the ``ingest_max_page_chars`` setting).
    ``slice_chars``: characters tokenized at once; it bounds memory, not the chunks (see above).
    """

    def __init__(
        self,
        tokenizer,
        max_tokens: int,
        overlap: int,
        max_page_chars: int | None = None,
        slice_chars: int = SLICE_CHARS,
    ) -> None:
        if overlap >= max_tokens:
            raise ValueError(f"chunk overlap ({overlap}) must be smaller than the chunk size ({max_tokens})")
        if max_page_chars is None:
            from jasper_rag.config import get_settings

            max_page_chars = get_settings().ingest_max_page_chars
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.overlap = overlap
        self.max_page_chars = max_page_chars
        self.slice_chars = max(slice_chars, 2)

    @classmethod
    def for_encoder(cls, encoder, chunk_tokens: int, overlap: int, max_page_chars: int | None = None) -> Chunker:
        """Chunks that fit ``encoder``: at most its max length, less the special tokens it adds."""
        tokenizer = encoder.tokenizer
        room = min(chunk_tokens, encoder.config.max_length) - tokenizer.num_special_tokens_to_add(pair=False)
        return cls(tokenizer, room, min(overlap, room // 2), max_page_chars)

    def split(self, text: str) -> list[TextSpan]:
        """The chunks of one page (none for blank text); ``PageTooLong`` over ``max_page_chars``."""
        if len(text) > self.max_page_chars:
            raise PageTooLong(
                f"page too long: {len(text):,} characters > limit {self.max_page_chars:,} "
                "(JASPER_INGEST_MAX_PAGE_CHARS)"
            )
        return list(self._spans(text))

    def _spans(self, text: str) -> Iterator[TextSpan]:
        """The windows, cut from a buffer that holds only the tokens from the current window's start
        (less one) to one past its largest end, filled from the page's tokens as they are needed."""
        tokens = self._tokens(text)
        offsets: Offsets = []
        exhausted = False

        def fill(count: int) -> None:  # at least ``count`` tokens in the buffer, or all that are left
            nonlocal exhausted
            if not exhausted and len(offsets) < count:
                offsets.extend(islice(tokens, count - len(offsets)))
                exhausted = len(offsets) < count

        start = 0
        while True:
            fill(start + self.max_tokens + 1)  # what _cut reads: the window and the token after it
            if start >= len(offsets):
                return
            end = self._cut(text, offsets, start)
            char_start, char_end = offsets[start][0], offsets[end - 1][1]
            yield TextSpan(text[char_start:char_end], char_start, char_end)
            if end == len(offsets):  # only when exhausted: otherwise the buffer reaches past the window
                return
            start = self._word_start(offsets, max(end - self.overlap, start + 1), end)
            del offsets[: start - 1]  # _word_start of the next window looks one token back
            start = 1

    def _tokens(self, text: str) -> Iterator[tuple[int, int]]:
        """Character spans (in ``text``) of the page's non-empty tokens, tokenized slice by slice."""
        pos = 0
        while pos < len(text):
            last = len(text) - pos <= self.slice_chars
            limit = len(text) if last else self._slice_end(text, pos)
            offsets = [(pos + s, pos + e) for s, e in self._offsets(text[pos:limit]) if e > s]
            if last:
                yield from offsets
                return
            keep = self._carry_from(text, offsets) or len(offsets)  # 0: a single token, or none
            yield from offsets[:keep]
            pos = offsets[keep - 1][1] if keep < len(offsets) else limit

    def _offsets(self, text: str) -> Offsets:
        return self.tokenizer(
            text,
            add_special_tokens=False,
            return_offsets_mapping=True,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,
        )["offset_mapping"]

    def _slice_end(self, text: str, pos: int) -> int:
        """Where the slice from ``pos`` ends: after the last space or newline in its second half."""
        target = pos + self.slice_chars
        half = pos + self.slice_chars // 2
        space = max(text.rfind(" ", half, target), text.rfind("\n", half, target))
        return space + 1 if space >= 0 else target

    @staticmethod
    def _carry_from(text: str, offsets: Offsets) -> int:
        """First token tokenized again with the next slice: the last one (not the first) with whitespace
        right before it; in a slice without such a token, the last one next to a punctuation mark, else
        the last one (a plain cut, as between CJK characters). 0 when the slice has fewer than two tokens."""
        for k in range(len(offsets) - 1, 0, -1):
            if offsets[k][0] > offsets[k - 1][1] and text[offsets[k][0] - 1].isspace():
                return k
        for k in range(len(offsets) - 1, 0, -1):
            if not (text[offsets[k][0] - 1].isalnum() and text[offsets[k][0]].isalnum()):
                return k
        return max(len(offsets) - 1, 0)

    def _cut(self, text: str, offsets: Offsets, start: int) -> int:
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
    def _word_start(offsets: Offsets, start: int, limit: int) -> int:
        """Move ``start`` forward to the first token that begins a word (not past ``limit``)."""
        while start < limit and offsets[start][0] == offsets[start - 1][1]:
            start += 1
        return start
