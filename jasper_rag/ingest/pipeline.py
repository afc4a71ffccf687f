"""The ingestion run: find files, skip unchanged ones, load, chunk, embed every head, commit in batches.

Files are keyed by absolute path and content hash (SHA-256): unchanged files are skipped, changed
ones replaced, files gone from an ingested folder deleted, each with its rows and vectors. Every
file ends with a status (``ingested``, ``not embedded``, ``failed`` + reason, ``unchanged``,
``removed``); one bad file never stops the run. Commits are atomic (see ``jasper_rag.store.store``),
so a killed run loses at most its last uncommitted batch, which the next run redoes.

Each file is parsed in a worker process bounded in CPU time, memory and wall-clock time
(``jasper_rag.ingest.worker``), so a hostile file costs at most those limits. The store's writer lock is
held only to write (binding the model, removals, each batch's commit), never while files are parsed
or embedded, so other writers wait seconds, not the length of a run.

Parsing and embedding overlap: a thread reads, parses and chunks the next files
(``jasper_rag.ingest.prefetch``, at most ``EMBED_BATCHES`` batches of entries ahead) while the main
thread embeds. Texts are embedded as soon as ``EMBED_BATCHES`` encoder batches of them are waiting,
whichever files they come from, so many small files still fill whole batches, sorted by length across
files (``jasper_rag.batching``); records are committed, as before, every ``ingest_commit_chunks`` entries.
"""

from __future__ import annotations

import copy
import errno
import hashlib
import io
import logging
import os
import stat
import threading
import time
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from jasper_rag.config import Settings, get_settings
from jasper_rag.ingest import worker
from jasper_rag.ingest.chunking import Chunker
from jasper_rag.ingest.loaders import (
    Content,
    FaqContent,
    ImageContent,
    LoadError,
    LoadLimits,
    Page,
    TextContent,
    file_type,
    storable,
)
from jasper_rag.ingest.prefetch import Prefetch
from jasper_rag.ingest.summary import REMOVED, UNCHANGED, FileOutcome, IngestSummary
from jasper_rag.ingest.worker import ParseLimits, ParseWorker, UnexpectedParseError
from jasper_rag.store import (
    Chunk,
    DocumentRecord,
    DocumentStatus,
    DocumentView,
    EntryKind,
    FaqEntry,
    ImageEntry,
    Store,
    embed_entry_heads,
    model_identity,
)
from jasper_rag.store.heads import embed_image_heads

log = logging.getLogger(__name__)

NO_IMAGE_ENCODER = "no image encoder yet: stored as an image record, not searchable"
NO_IMAGE_ENCODER_TEXT = "no image encoder yet: the image is not searchable, the text OCR read in it is"
MAX_PENDING_FILES = 512
# Encoder batches of texts embedded at once, sorted by length across their files: enough for little
# padding (docs/performance.md, "Ingestion throughput"), few enough to overlap with parsing; as many
# entries are parsed ahead while they embed, so the next texts are ready when the encoder is.
EMBED_BATCHES = 16
UNLISTED = "cannot list folder"


@dataclass
class Discovery:
    """What a walk of the given paths found.

    ``files``: sorted absolute paths without duplicates; ``roots``: for each file found by walking a folder,
    that folder (the file must stay inside it, see ``read_file``); ``missing``: given paths that do not
    exist; ``unlisted``: folders that could not be listed (with the reason), whose documents must be kept.
    """

    files: list[Path] = field(default_factory=list)
    roots: dict[Path, Path] = field(default_factory=dict)
    missing: list[Path] = field(default_factory=list)
    unlisted: dict[Path, str] = field(default_factory=dict)


def discover(paths: Iterable[str | Path]) -> Discovery:
    """Every file under ``paths`` (folders walked recursively, hidden entries and symlinked folders skipped).

    A folder that cannot be listed (permissions, a flaky network share) is noted in ``unlisted`` rather
    than silently skipped, so its files are not mistaken for deleted ones. A given path that exists but
    cannot be examined is unlisted too; only one that does not exist is missing.
    """
    found: dict[Path, Path | None] = {}
    missing: list[Path] = []
    unlisted: dict[Path, str] = {}

    def failed_to_list(err: OSError) -> None:
        if err.errno in (errno.ENOENT, errno.ENOTDIR):  # vanished since it was listed: it is gone
            return
        unlisted[Path(err.filename or "?")] = err.strerror or str(err)

    for given in paths:
        root = absolute(given)
        try:
            info = os.stat(root)
        except FileNotFoundError:
            if root.is_symlink():
                found.setdefault(root, None)  # a dangling link named by the user: reported when read
            else:
                missing.append(root)
            continue
        except OSError as err:
            if err.errno == errno.ENOTDIR:
                missing.append(root)
            else:
                unlisted[root] = err.strerror or str(err)
            continue
        if stat.S_ISDIR(info.st_mode):
            for folder, subfolders, files in os.walk(root, onerror=failed_to_list):
                subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
                for name in files:
                    if not name.startswith("."):
                        found.setdefault(Path(folder) / name, root)
        else:
            found[root] = None  # named directly: read as given, even through a link
    files = sorted(found)
    roots = {path: root for path, root in found.items() if root is not None}
    return Discovery(files, roots, missing, unlisted)


def has_storable_name(path: Path) -> bool:
    """False for names that are not valid UTF-8 (a database cannot key them, a terminal cannot show them)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable_path(path: Path) -> str:
    """The path with undecodable bytes written as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def absolute(path: str | Path) -> Path:
    """A path as the store keys it (absolute, not resolved: the key ingest gives a file)."""
    return Path(os.path.abspath(path))


def is_under(path: str, roots: Sequence[Path]) -> bool:
    return any(path == str(root) or path.startswith(f"{root}{os.sep}") for root in roots)


def can_embed_images(encoder) -> bool:
    """The vision hook: an encoder with a vision tower embeds images into its heads' spaces through
    ``encode_image_heads(images, heads)`` (``jasper_rag.vision``)."""
    return getattr(encoder, "vision", None) is not None and callable(getattr(encoder, "encode_image_heads", None))


def embed_image(encoder, data: bytes) -> dict[str, np.ndarray]:
    """One image's vectors for every store head, from one pass of the encoder's vision tower."""
    with Image.open(io.BytesIO(data)) as image:
        rgb = image.convert("RGB")
    return embed_image_heads(encoder, [rgb])


def inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


# Part of every file's hash: bump it when the loaders or the chunker change what a file yields, so
# stores built by earlier readers ingest their files again instead of keeping the old chunks as
# "unchanged" (2: markup-free sections, sliced chunking).
READER_VERSION = b"jasper_rag readers 2\n"


def file_hash(data: bytes) -> str:
    """The hash a file's document is kept under: its bytes as read by this version of the readers."""
    return hashlib.sha256(READER_VERSION + data).hexdigest()


def read_file(path: Path, limit_bytes: int, root: Path | None = None) -> bytes:
    """The bytes of a regular file no larger than the limit, or ``LoadError`` with the reason.

    Opened without blocking and checked on the open handle, so a file swapped for a FIFO or a device
    after it was listed cannot hang the run.

    ``root``: the folder whose walk found the file. Such a file must stay inside that folder: a symlink
    (of the file or of a folder on the way) that leads outside it is refused ("symlink pointing outside
    <root>: not ingested"), so ``folder/notes.txt -> /etc/passwd`` never becomes searchable. The check
    is made on the resolved path, the file is then opened without following a link in its last
    component (``O_NOFOLLOW``), and the opened file's own path is checked again (Linux ``/proc``), so a
    link swapped in between cannot slip through. Links that stay inside the folder are read.
    Without ``root`` (a path the user named directly) the file is read as given, links included: the
    user chose it.
    """
    try:
        flags = os.O_RDONLY | os.O_NONBLOCK
        target: str | Path = path
        if root is not None:
            real_root = os.path.realpath(root)
            target = os.path.realpath(path)
            if not inside(target, real_root):
                raise LoadError(f"symlink pointing outside {printable_path(root)}: not ingested")
            flags |= os.O_NOFOLLOW
        fd = os.open(target, flags)  # still a link after resolving: a loop (or a swap), ELOOP -> unreadable
        with os.fdopen(fd, "rb") as handle:
            if root is not None:
                _check_opened_inside(handle.fileno(), os.path.realpath(root), root)
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise LoadError("not a regular file")
            if info.st_size > limit_bytes:
                raise LoadError(f"too large: {info.st_size / 2**20:.1f} MiB > limit {limit_bytes / 2**20:.1f} MiB")
            data = handle.read(limit_bytes + 1)
    except OSError as err:
        raise LoadError(f"unreadable: {err.strerror or err}") from err
    if len(data) > limit_bytes:
        raise LoadError(f"too large: over the limit of {limit_bytes / 2**20:.1f} MiB")
    if not data:
        raise LoadError("empty file (0 bytes)")
    return data


def _check_opened_inside(fd: int, real_root: str, root: Path) -> None:
    """Refuse an opened file whose actual path lies outside ``real_root`` (skipped where ``/proc`` is absent)."""
    try:
        opened = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return
    if not inside(opened, real_root):
        raise LoadError(f"symlink pointing outside {printable_path(root)}: not ingested")


class Ingestor:
    """Runs one ingestion into ``store`` with ``encoder`` (use ``ingest_paths``)."""

    def __init__(self, store: Store, encoder, settings: Settings, progress: bool = True) -> None:
        self.store = store
        self.encoder = encoder
        self.settings = settings
        self.chunker = Chunker.for_encoder(
            encoder, settings.chunk_tokens, settings.chunk_overlap, settings.ingest_max_page_chars
        )
        # the parse thread's own copy: a fast tokenizer used by two threads at once fails ("Already borrowed")
        self.chunker.tokenizer = copy.deepcopy(encoder.tokenizer)
        self.encoding = threading.Lock()  # the encoder runs one call at a time (images are embedded while parsed)
        self.limit_bytes = int(settings.ingest_max_file_mb * 2**20)
        self.limits = LoadLimits.from_settings(settings)
        self.parse_limits = ParseLimits.from_settings(settings)
        self.parser: ParseWorker | None = None
        self.identity = model_identity(encoder)
        self.images = can_embed_images(encoder)
        self.summary = IngestSummary()
        self.pending: list[DocumentRecord] = []
        self.embedded = 0  # how many of the pending records have their text vectors
        self.waiting = 0  # texts of the pending records without vectors
        self.roots: dict[Path, Path] = {}
        self.progress = progress
        self.retry_failed = True
        self.embed_bar = tqdm(desc="embedding", unit="text", total=0, position=1, disable=not progress, leave=False)

    def run(self, paths: Sequence[str | Path], rebuild: bool = False, retry_failed: bool = True) -> IngestSummary:
        """Ingest ``paths``; with ``retry_failed`` False, a file that failed before is read again only
        once its content changed (a watcher's repeated syncs must not re-parse a hostile file each time)."""
        self.retry_failed = retry_failed
        started = time.perf_counter()
        found = discover(paths)
        files, self.roots = found.files, found.roots
        self.summary.outcomes += [
            FileOutcome(printable_path(path), DocumentStatus.FAILED, "not found") for path in found.missing
        ]
        self.summary.outcomes += [
            FileOutcome(printable_path(path), DocumentStatus.FAILED, f"{UNLISTED}: {reason}; its documents are kept")
            for path, reason in found.unlisted.items()
        ]
        self.summary.outcomes += [
            FileOutcome(printable_path(path), DocumentStatus.FAILED, "file name is not valid UTF-8: rename the file")
            for path in files
            if not has_storable_name(path)
        ]
        files = [path for path in files if has_storable_name(path)]
        self.parser = worker.acquire(self.parse_limits)
        try:
            with self.store.writer():  # held only to write: parsing and embedding run without it
                if rebuild:
                    self.store.clear()
                self.store.bind_model(self.identity)
                known = {doc.path: doc for doc in self.store.documents()}
                kept = [*found.unlisted, *found.missing]  # unknown is not gone: an unmounted share keeps its documents
                self._remove_gone(known, files, [absolute(p) for p in paths], kept)
            with self._prepared(files, known) as ahead:
                bar = tqdm(ahead, total=len(files), desc="files", unit="file", position=0, disable=not self.progress)
                for path, record in bar:
                    self._add(path, record)
            self._flush()
        finally:
            worker.release(self.parser)
            self.embed_bar.close()
        self.summary.seconds = time.perf_counter() - started
        return self.summary

    def _prepared(
        self, files: list[Path], known: dict[str, DocumentView]
    ) -> AbstractContextManager[Iterable[tuple[Path, DocumentRecord | None]]]:
        """Each file with its new record (None: unchanged), in order, read, parsed and chunked by a thread a
        bounded number of entries ahead of the embedding (``jasper_rag.ingest.ray_engine`` does it on Ray)."""
        parsed = ((path, self._prepare(path, self._done_hash(known.get(str(path))))) for path in files)
        window = EMBED_BATCHES * self.settings.batch_size
        return Prefetch(parsed, window, lambda item: len(item[1].entries) if item[1] else 1, "ingest-parse")

    def _remove_gone(
        self, known: dict[str, DocumentView], files: list[Path], roots: list[Path], unlisted: list[Path]
    ) -> None:
        """Delete the documents of files that vanished from the given folders; those under a folder that
        could not be listed or is missing itself are kept (unknown is not gone: ``jasper-rag remove`` removes
        on purpose)."""
        present = {str(path) for path in files}
        gone = [
            path for path in known if is_under(path, roots) and path not in present and not is_under(path, unlisted)
        ]
        self.store.commit([], gone)
        self.summary.outcomes += [FileOutcome(path, REMOVED) for path in gone]

    def _add(self, path: Path, record: DocumentRecord | None) -> None:
        """Queue one file's new record (embedding when enough texts wait, committing when the batch is
        full), or note it unchanged (``record`` None)."""
        if record is None:
            self.summary.outcomes.append(FileOutcome(str(path), UNCHANGED))
            return
        self.pending.append(record)
        texts = sum(len(entry.embedding_texts()) for entry in self._texted(record))
        self.waiting += texts
        self.embed_bar.total += texts
        self.embed_bar.refresh()
        full = self._pending_entries() >= self.settings.ingest_commit_chunks or len(self.pending) >= MAX_PENDING_FILES
        if full:
            self._flush()
        elif self.waiting >= EMBED_BATCHES * self.settings.batch_size:
            self._embed()

    # ----------------------------------------------------------------- one file
    def _done_hash(self, previous: DocumentView | None) -> str | None:
        """The content hash under which a file needs no work (images wait for an image encoder; failed files
        are retried unless ``retry_failed`` is off)."""
        if previous is not None and previous.status == DocumentStatus.FAILED and not self.retry_failed:
            return previous.content_hash
        if previous is None or previous.status not in DocumentStatus.DONE:
            return None
        if previous.status == DocumentStatus.NOT_EMBEDDED and self.images:
            return None
        return previous.content_hash

    def _prepare(self, path: Path, done_hash: str | None) -> DocumentRecord | None:
        """The file's new record, or None when it is unchanged since it was ingested."""
        kind = file_type(path)
        record = DocumentRecord(str(path), kind.name if kind else "unknown", DocumentStatus.FAILED)
        try:
            data = read_file(path, self.limit_bytes, self.roots.get(path))
            record.size_bytes, record.content_hash = len(data), file_hash(data)
            if record.content_hash == done_hash:
                return None
            if kind is None:
                raise LoadError(f"unsupported file type '{path.suffix or path.name}'")
            content = self.parser.load(kind.load, path, data, self.limits)
            record.file_type = kind.stored_name(content)  # a .csv is an FAQ or a table
            self._fill(record, content, data)
        except LoadError as err:
            return self._failed(record, str(err))
        except UnexpectedParseError as err:  # a loader bug or a hostile file, met in the worker
            return self._failed(record, f"unexpected error: {err}")
        except Exception as err:  # a loader bug or a hostile file: record it, keep going
            log.debug("unexpected error on %s", path, exc_info=True)
            return self._failed(record, f"unexpected error: {type(err).__name__}: {err}")
        return record

    @staticmethod
    def _failed(record: DocumentRecord, reason: str) -> DocumentRecord:
        record.status, record.error, record.entries, record.vectors = DocumentStatus.FAILED, storable(reason), [], {}
        return record

    def _fill(self, record: DocumentRecord, content: Content, data: bytes) -> None:
        """Turn loaded content into entries (and, for images, vectors)."""
        if isinstance(content, TextContent):
            record.pages = sum(1 for page in content.pages if page.number is not None) or None
            record.entries = self._chunks(content.pages)
            if not record.entries:
                raise LoadError("no text to index")
        elif isinstance(content, FaqContent):
            record.entries = [
                FaqEntry(text=question, answer=answer, embedded=True) for question, answer in content.pairs
            ]
        elif isinstance(content, ImageContent):
            image = ImageEntry(
                text=Path(record.path).name,
                width=content.width,
                height=content.height,
                image_format=content.image_format,
                embedded=self.images,
            )
            record.entries = [image, *self._chunks(content.text)]  # the image first: its vector comes first
            if self.images:
                with self.encoding:
                    record.vectors = embed_image(self.encoder, data)
        for ordinal, entry in enumerate(record.entries):
            entry.ordinal = ordinal
        if self.images or not isinstance(content, ImageContent):
            record.status = DocumentStatus.INGESTED
        else:
            record.status = DocumentStatus.NOT_EMBEDDED
            record.error = NO_IMAGE_ENCODER_TEXT if content.text else NO_IMAGE_ENCODER

    def _chunks(self, pages: Sequence[Page]) -> list[Chunk]:
        """The chunks of some pages, each with its page number, span, heading and whether it was OCR'd."""
        return [
            Chunk(
                text=span.text,
                page=page.number,
                char_start=span.char_start,
                char_end=span.char_end,
                heading=page.heading,
                ocr=page.ocr,
                embedded=True,
            )
            for page in pages
            for span in self.chunker.split(page.text)
        ]

    # ----------------------------------------------------------------- batches
    def _pending_entries(self) -> int:
        return sum(len(record.entries) for record in self.pending)

    @staticmethod
    def _texted(record: DocumentRecord) -> list:
        """The record's entries embedded by the text encoder."""
        return [entry for entry in record.entries if entry.embedded and entry.kind != EntryKind.IMAGE]

    def _embed(self) -> None:
        """Embed, for every head, the texts of the pending records that have no vectors yet, in one call
        (sorted by length across files by the encoder)."""
        records = self.pending[self.embedded :]
        self.embedded, self.waiting = len(self.pending), 0
        texted = [self._texted(record) for record in records]
        parts = [entry.embedding_texts() for entries in texted for entry in entries]
        if not parts:
            return
        with self.encoding:
            vectors = embed_entry_heads(self.encoder, parts, self.settings.batch_size, on_batch=self.embed_bar.update)
        offset = 0
        for record, entries in zip(records, texted, strict=True):
            if not entries:
                continue
            count = len(entries)
            rows = {head: vectors[head][offset : offset + count] for head in vectors}
            own = record.vectors  # an image's own vector (its entry comes first) precedes its recognised text's
            record.vectors = {head: np.vstack([own[head], r]) if head in own else r for head, r in rows.items()}
            offset += count

    def _flush(self) -> None:
        """Embed the pending texts still without vectors and commit the pending records."""
        if not self.pending:
            return
        self._embed()
        with self.store.writer():  # short: another run's commits interleave with ours, file by file
            self.store.bind_model(self.identity)  # refuses if another run rebuilt with another model meanwhile
            self.store.commit(self.pending)
        for record in self.pending:
            embedded = [entry for entry in record.entries if entry.embedded]
            for entry in embedded:
                self.summary.embedded[entry.kind] += 1
            self.summary.outcomes.append(FileOutcome(record.path, record.status, record.error, len(record.entries)))
        self.pending, self.embedded, self.waiting = [], 0, 0


def ingest_paths(
    paths: Sequence[str | Path],
    encoder,
    store: Store,
    settings: Settings | None = None,
    rebuild: bool = False,
    progress: bool = True,
) -> IngestSummary:
    """Ingest files and folders into ``store`` with ``encoder``; see the module docstring."""
    return Ingestor(store, encoder, settings or get_settings(), progress).run(paths, rebuild=rebuild)
