"""E-mail: ``.eml`` (one message) and ``.mbox`` (many), read with the standard library (``email``, policy.default).

Each message is one ``Page``: its ``heading`` is the subject, and its text is the subject, a ``From: ... |
Date: ...`` line, then the body: the text/plain parts, or when there are none the text/html parts as the
HTML reader's visible text (``load_html``); attachments are listed by name at the end, never parsed. In a
mailbox ``Page.number`` is the message's position (1-based).

Bounded work per message, whatever the file. Before parsing, a message is refused when it is larger than
``max_mail_message_bytes`` (``JASPER_INGEST_MAX_MAIL_MESSAGE_MB``), has more than ``MAX_MIME_PARTS``
part delimiter lines (the parser costs about 0.25 ms per part), or a ``Content-*`` header longer than
``MAX_MIME_HEADER_BYTES`` (the parser reads those while parsing, in time quadratic in their length on
hostile parameter lists); nesting deeper than the parser's recursion is refused too. Subject, From and
Date are cut to ``MAX_HEADER_CHARS`` before they are parsed. A mailbox with more than ``max_mail_messages``
messages (``JASPER_INGEST_MAX_MAIL_MESSAGES``) is refused; a message in it that is refused is skipped and
the count logged (the file fails only when no message is left). The mailbox is split on its ``From ``
lines as ``mailbox.mbox`` splits it, but from the bytes the pipeline read (``mailbox`` reopens the file).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path

from jasper_rag.ingest.loaders import LoadError, LoadLimits, Page, TextContent, load_html, require_text, storable
from jasper_rag.ingest.markup import heading_line

log = logging.getLogger(__name__)

MAX_MIME_PARTS = 1000
MAX_MIME_HEADER_BYTES = 4096
MAX_HEADER_CHARS = 1000
MAX_ATTACHMENTS_LISTED = 50
NO_SUBJECT = "(no subject)"
NO_TEXT = "empty: no message text"
MBOX_FROM = re.compile(rb"^From ", re.MULTILINE)
MBOXRD_QUOTED = re.compile(rb"^>(>*From )", re.MULTILINE)
UTF8_BOM = b"\xef\xbb\xbf"


def load_eml(path: Path, data: bytes, limits: LoadLimits) -> TextContent:
    """One message (see the module docstring)."""
    return require_text([message_page(data, None, limits)], message=NO_TEXT)


def load_mbox(path: Path, data: bytes, limits: LoadLimits) -> TextContent:
    """A mailbox: one page per message; refused messages are skipped and counted (see the module docstring)."""
    pages, refused = [], []
    for number, raw in enumerate(split_mbox(data, limits.max_mail_messages), start=1):
        try:
            pages.append(message_page(raw, number, limits))
        except LoadError as err:
            refused.append(f"message {number}: {err}")
    if refused and not pages:
        raise LoadError(f"no readable message: {len(refused)} refused ({refused[0]})")
    if refused:
        log.warning("%s: %d of %d messages skipped (%s)", path, len(refused), len(refused) + len(pages), refused[0])
    return require_text(pages, message=NO_TEXT)


def split_mbox(data: bytes, max_messages: int) -> list[bytes]:
    """The messages of an mbox, without their ``From `` envelope lines and with ``>From `` lines unquoted;
    ``LoadError`` when it has no envelope line first or more than ``max_messages`` messages."""
    if not data.lstrip(b"\r\n").startswith(b"From "):
        raise LoadError("not an mbox: it must begin with a 'From ' envelope line")
    starts: list[int] = []
    for match in MBOX_FROM.finditer(data):
        if len(starts) == max_messages:
            raise LoadError(f"too many messages: over {max_messages} (JASPER_INGEST_MAX_MAIL_MESSAGES)")
        starts.append(match.start())
    messages = []
    for start, end in zip(starts, [*starts[1:], len(data)], strict=True):
        body = data.find(b"\n", start, end)
        raw = data[body + 1 : end] if body >= 0 else b""
        messages.append(MBOXRD_QUOTED.sub(rb"\1", raw.removesuffix(b"\n").removesuffix(b"\r")))
    return messages


def check_bounds(raw: bytes, limits: LoadLimits) -> None:
    """Refuse a message before parsing when parsing it could cost more than its size suggests."""
    if len(raw) > limits.max_mail_message_bytes:
        raise LoadError(
            f"message too large: {len(raw) / 2**20:.1f} MiB > limit {limits.max_mail_message_bytes / 2**20:.1f} MiB "
            "(JASPER_INGEST_MAX_MAIL_MESSAGE_MB)"
        )
    delimiters = raw.count(b"\n--") + raw.startswith(b"--")
    if delimiters > MAX_MIME_PARTS:
        raise LoadError(f"too many MIME parts: {delimiters} part delimiters > limit {MAX_MIME_PARTS}")
    longest = _longest_mime_header(raw)
    if longest > MAX_MIME_HEADER_BYTES:
        raise LoadError(f"malformed message: a Content-* header of {longest} bytes > limit {MAX_MIME_HEADER_BYTES}")


def _longest_mime_header(raw: bytes) -> int:
    """The length of the longest ``Content-*`` header line with its continuation lines (one pass)."""
    longest = length = 0
    for line in raw.split(b"\n"):
        if length and line[:1] in (b" ", b"\t"):
            length += len(line) + 1
            continue
        longest = max(longest, length)
        length = len(line) + 1 if line[:8].lower() == b"content-" else 0
    return max(longest, length)


def message_page(raw: bytes, number: int | None, limits: LoadLimits) -> Page:
    """One message as a page (see the module docstring), or ``LoadError`` with the reason."""
    check_bounds(raw, limits)
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
        headers = {name.lower(): value for name, value in reversed(list(message.raw_items()))}  # the first of each
        body, attachments = message_text(message)
    except RecursionError as err:
        raise LoadError("malformed message: MIME parts nested too deeply") from err
    except MemoryError:
        raise  # the parsing worker's own limit: it reports it and is replaced
    except Exception as err:  # the stdlib parser raises assorted errors on hostile input: one message's problem
        raise LoadError(f"malformed message: {type(err).__name__}: {err}") from err
    subject = header_text("subject", headers) or NO_SUBJECT
    origin = " | ".join(
        f"{label}: {value}" for label in ("From", "Date") if (value := header_text(label.lower(), headers))
    )
    lines = [subject, origin, "", body.strip()] if origin else [subject, "", body.strip()]
    if attachments:
        more = len(attachments) - MAX_ATTACHMENTS_LISTED
        listed = ", ".join(attachments[:MAX_ATTACHMENTS_LISTED]) + (f" and {more} more" if more > 0 else "")
        lines += ["", f"Attachments: {listed}"]
    text = "\n".join(lines).strip()
    return Page(number, storable(text), heading_line((storable(subject),)))


def header_text(name: str, headers: dict[str, str]) -> str:
    """A header's decoded value on one line, cut to ``MAX_HEADER_CHARS`` before it is parsed."""
    raw = headers.get(name)
    if not raw:
        return ""
    raw = raw[:MAX_HEADER_CHARS]
    try:
        value = str(policy.default.header_factory(name, raw))
    except Exception:  # the stdlib header parser raises assorted errors on hostile values: keep the raw text
        value = raw
    return storable(" ".join(value.split()))


def message_text(message: Message) -> tuple[str, list[str]]:
    """The body (text/plain parts, else text/html parts as visible text) and the attachments' names."""
    plain, html, attachments = [], [], []
    for part in leaf_parts(message):
        name = part.get_filename()
        if name or part.get_content_disposition() == "attachment":
            attachments.append(" ".join(storable(name or "unnamed").split())[:MAX_HEADER_CHARS])
        elif part.get_content_type() == "text/plain":
            plain.append(part_text(part))
        elif part.get_content_type() == "text/html":
            html.append(html_text(part_text(part)))
    return "\n\n".join(plain or html), attachments


def leaf_parts(message: Message) -> Iterator[Message]:
    """The non-multipart parts, depth first, without recursion (the parser already bounds the depth)."""
    pending: list[Message] = [message]
    while pending:
        part = pending.pop()
        payload = part.get_payload() if part.is_multipart() else None
        if isinstance(payload, list):
            pending.extend(reversed(payload))
        else:
            yield part


def part_text(part: Message) -> str:
    """A text part decoded (transfer encoding, then charset; an unknown charset read as UTF-8)."""
    try:
        return part.get_content() if isinstance(part, EmailMessage) else str(part.get_payload())
    except (LookupError, ValueError):
        payload = part.get_payload(decode=True) or b""
        return payload.decode("utf-8", "replace")


def html_text(markup: str) -> str:
    """The visible text of an HTML body, through the HTML file reader (BOM: the text is already decoded)."""
    try:
        content = load_html(Path("body.html"), UTF8_BOM + markup.encode("utf-8", "replace"))
    except LoadError:  # nothing visible
        return ""
    return "\n\n".join(page.text for page in content.pages)


def sample_mail() -> dict[str, bytes]:
    """A short support thread about the search tool as an mbox (deterministic bytes), for sample corpora."""
    thread = [
        (
            "Dana Reyes <dana@example.org>",
            "Mon, 02 Nov 2026 09:12:00 +0000",
            "Hybrid search misses exact part numbers",
            "Hi team,\n\nwhen I search for the part number PX-4471 in dense mode the manual page does not come up,"
            " although the number is printed on it. Is there a mode that matches exact words?\n\nDana",
        ),
        (
            "Support <support@example.org>",
            "Mon, 02 Nov 2026 10:40:00 +0000",
            "Re: Hybrid search misses exact part numbers",
            "Hi Dana,\n\nuse --mode hybrid (the default) or --mode lexical: the lexical index matches exact terms"
            " such as part numbers, and hybrid fuses it with the dense results. Dense mode alone ranks by meaning"
            " and can miss rare codes.\n\nSupport",
        ),
        (
            "Dana Reyes <dana@example.org>",
            "Mon, 02 Nov 2026 11:05:00 +0000",
            "Re: Hybrid search misses exact part numbers",
            "Thanks, hybrid finds it first now. Can I limit a search to one folder?\n\n"
            "Support answered: yes, --folder PATH keeps the hits under that folder.\n\nDana",
        ),
    ]
    messages = []
    for sender, date, subject, body in thread:
        message = EmailMessage()
        message["From"], message["To"], message["Date"], message["Subject"] = (
            sender,
            "support@example.org",
            date,
            subject,
        )
        message.set_content(body, cte="7bit")
        sent = parsedate_to_datetime(date).strftime("%a %b %d %H:%M:%S %Y")
        envelope = f"From {sender.split('<')[1].rstrip('>')} {sent}\n".encode()
        messages.append(envelope + message.as_bytes(policy=policy.default.clone(linesep="\n")) + b"\n")
    return {"support-thread.mbox": b"".join(messages)}
