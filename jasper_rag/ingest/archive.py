"""Zip safety: checks a zip-based file (DOCX, PPTX, XLSX, ODT, EPUB) before any format library opens it.

Every one of these formats is a zip archive, and a zip can claim or hold far more than its size on disk:
a member that inflates to gigabytes (a zip bomb), a size header that lies, 100,000 tiny members, XML
with entity declarations (billion laughs, external entities). ``check_zip`` refuses such a file with
a ``LoadError`` naming the problem, in this order and at a cost bounded by the limits:

1. not a zip at all (an encrypted Office file is an OLE container, not a zip: said so);
2. the member count the end-of-central-directory record declares, and the size of the central
   directory (at most 256 bytes per allowed member), read before ``zipfile`` builds one object per member;
3. the real member count, encrypted members, the total *declared* uncompressed size
   (``JASPER_INGEST_MAX_ARCHIVE_MB``) and each large member's compression ratio
   (``JASPER_INGEST_MAX_ARCHIVE_RATIO``);
4. every member inflated in 1 MiB steps, counting the *real* inflated bytes against the same size
   limit (``zipfile`` stops a member at its declared size and then fails its CRC check, so a lying
   header ends as "corrupt"), and scanning for ``<!ENTITY``: no Office or EPUB file needs a DTD entity,
   so any is refused, whatever the XML parser a library uses would do with it.

The format libraries then open the same bytes, now known to be bounded.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from xml.sax import SAXException

from lxml import etree

from jasper_rag.ingest.loaders import LoadError, LoadLimits

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # compound file: encrypted OOXML, or a legacy .doc/.xls/.ppt
EOCD = b"PK\x05\x06"
EOCD64_LOCATOR = b"PK\x06\x07"
EOCD_SIZE = 22
MAX_COMMENT = 65_535
MAX_CENTRAL_ENTRY_BYTES = 256  # a generous average per central directory entry (46 bytes + name + extras)
RATIO_FLOOR = 2**20  # the ratio is only checked for members inflating to more than this
STEP = 2**20
ENTITY = b"<!ENTITY"
MAX_REASON_CHARS = 300


@dataclass(frozen=True)
class ArchiveFacts:
    """What the check found: members, declared and real inflated bytes."""

    members: int
    declared_bytes: int
    inflated_bytes: int


def check_zip(data: bytes, limits: LoadLimits, kind: str) -> ArchiveFacts:
    """Refuse ``data`` (a ``kind`` file, "DOCX") unless it is a zip within ``limits``; see the module docstring."""
    if data.startswith(OLE_MAGIC):
        raise LoadError(
            f"encrypted or legacy {kind}: an OLE compound file, not a zip (password-protected, or the old binary "
            "format: save it unprotected in the current format)"
        )
    declared_members, directory_bytes = _directory(data, kind)
    _check_count(declared_members, limits)
    if directory_bytes > limits.max_archive_members * MAX_CENTRAL_ENTRY_BYTES:
        raise LoadError(
            f"too many archive members: a central directory of {directory_bytes:,} bytes holds more than "
            f"{limits.max_archive_members:,} (JASPER_INGEST_MAX_ARCHIVE_MEMBERS)"
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            _check_count(len(members), limits)
            declared = _check_declared(members, limits, kind)
            inflated = 0
            for info in members:
                inflated = _inflate(archive, info, limits, kind, inflated)
    except LoadError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError, OSError) as err:
        raise LoadError(f"corrupt {kind}: {err or type(err).__name__}") from err
    return ArchiveFacts(len(members), declared, inflated)


def _directory(data: bytes, kind: str) -> tuple[int, int]:
    """The member count and central directory size the end record declares (its zip64 form if any)."""
    start = data.rfind(EOCD, max(0, len(data) - EOCD_SIZE - MAX_COMMENT))
    if start < 0 or len(data) < start + EOCD_SIZE:
        raise LoadError(f"not a valid {kind} file: not a zip archive")
    count, size = struct.unpack_from("<HI", data, start + 10)
    locator = start - 20
    if (count == 0xFFFF or size == 0xFFFFFFFF) and locator >= 0 and data[locator : locator + 4] == EOCD64_LOCATOR:
        (offset,) = struct.unpack_from("<Q", data, locator + 8)
        if offset + 48 <= len(data):
            count, size = struct.unpack_from("<QQ", data, offset + 32)
    return count, size


def _check_count(count: int, limits: LoadLimits) -> None:
    """Refuse an archive of more than ``limits.max_archive_members`` members."""
    if count > limits.max_archive_members:
        raise LoadError(
            f"too many archive members: {count:,} > limit {limits.max_archive_members:,} "
            "(JASPER_INGEST_MAX_ARCHIVE_MEMBERS)"
        )


def _too_large(size: int, limits: LoadLimits, what: str) -> LoadError:
    """The error for an archive of ``size`` unpacked bytes, past ``limits.max_archive_bytes``."""
    return LoadError(
        f"archive too large when unpacked: {what} {size / 2**20:,.1f} MiB > limit "
        f"{limits.max_archive_bytes / 2**20:,.1f} MiB (JASPER_INGEST_MAX_ARCHIVE_MB)"
    )


def _check_declared(members: list[zipfile.ZipInfo], limits: LoadLimits, kind: str) -> int:
    """The declared inflated total, checked with encryption and each large member's ratio."""
    total = 0
    for info in members:
        if info.flag_bits & 0x1:
            raise LoadError(f"encrypted {kind}: archive member {info.filename!r} needs a password")
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_FLOOR and ratio > limits.max_archive_ratio:
            raise LoadError(
                f"suspicious compression (zip bomb?): {info.filename!r} inflates {ratio:,.0f} times > limit "
                f"{limits.max_archive_ratio:g} (JASPER_INGEST_MAX_ARCHIVE_RATIO)"
            )
    if total > limits.max_archive_bytes:
        raise _too_large(total, limits, "members declare")
    return total


def _inflate(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: LoadLimits, kind: str, total: int) -> int:
    """Inflate one member in steps (never held whole), adding its bytes to ``total`` (the members before
    it) and scanning it for ``<!ENTITY``; the new total."""
    tail = b""
    with archive.open(info) as member:
        while block := member.read(STEP):
            total += len(block)
            if total > limits.max_archive_bytes:
                raise _too_large(total, limits, "members inflate to over")
            if ENTITY in tail + block[: len(ENTITY)] or ENTITY in block:
                raise LoadError(
                    f"unsafe {kind}: {info.filename!r} declares XML entities (entity expansion or external "
                    "entities are refused)"
                )
            tail = block[-len(ENTITY) :]
    return total


PARSE_ERRORS: tuple[type[BaseException], ...] = (
    *(LookupError, ValueError, TypeError, AttributeError, OSError, EOFError, RecursionError, NotImplementedError),
    *(zipfile.BadZipFile, zlib.error, SyntaxError, etree.LxmlError, SAXException),
)


@contextmanager
def parse_errors(kind: str, *extra: type[BaseException]) -> Iterator[None]:
    """What a format library raises on a damaged file (``PARSE_ERRORS`` and ``extra``) as
    ``LoadError("corrupt <kind>: ...")``; ``MemoryError`` and ``LoadError`` go through."""
    try:
        yield
    except LoadError:
        raise
    except (*PARSE_ERRORS, *extra) as err:
        raise LoadError(f"corrupt {kind}: {type(err).__name__}: {err}"[:MAX_REASON_CHARS]) from err
