"""Text from documents, uploads and errors, made safe to put on the page.

Streamlit renders ``st.markdown`` (and ``st.error``, ``st.caption``...) as Markdown, and the result
cards are HTML blocks drawn with ``unsafe_allow_html``. A blank line ends an HTML block, so user text
that kept its newlines could continue the page as Markdown (remote images, links, headings). Every
piece of user text (file names, chunk text, FAQ questions and answers, headings, error messages that
echo a file name) therefore goes through ``safe_text``: HTML-escaped, every Markdown-significant
character written as a numeric character reference (shown literally, never interpreted, in Markdown
and in HTML alike) and line breaks turned into ``<br>`` inside HTML blocks (a space elsewhere), so a
block never ends inside user text.

Errors are shown as one line (``error_line``) with any password masked (``mask_secrets``): URLs of the
form ``scheme://user:password@host`` and ``password=...`` key-value pairs.
"""

from __future__ import annotations

import re

# Characters that start or end Markdown / GFM / Streamlit constructs anywhere in a line: emphasis, code,
# links and images, headings, tables, strike-through, LaTeX ($), emoji and colour directives (:red[..]),
# autolinks (http://, bare e-mails) and escapes; and HTML's < > & " '. The text is always one
# line (see ``safe_text``), so the constructs that only count at a line's start (lists, rules, setext
# underlines) are neutralised there only, and "www." (GFM's bare autolinks) everywhere.
MARKDOWN_CHARS = "\\`*_{}[]()#!|~:$@"
ENTITIES = {ord(char): f"&#{ord(char)};" for char in MARKDOWN_CHARS} | {
    ord("&"): "&amp;",
    ord("<"): "&lt;",
    ord(">"): "&gt;",
    ord('"'): "&quot;",
    ord("'"): "&#x27;",
}
LINE_START = re.compile(r"^([ \t]*)(\d{0,9})([-+=.])")
WWW_DOT = re.compile(r"(?i)(www)\.")
LINE_BREAKS = re.compile(r"\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
SPACES = re.compile(r"[ \t]+")
URL_SECRET = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^\s:/@]*):([^\s/]*)@")
KEY_SECRET = re.compile(r"(?i)\b(password|passwd|pwd)\s*=\s*('[^']*'|\"[^\"]*\"|[^\s;,]+)")
MASK = "***"
ERROR_LINE_MAX = 300


def safe_text(text: object, breaks: bool = True) -> str:
    """``text`` as inert HTML/Markdown: shown exactly as written, nothing in it interpreted.

    Line breaks become ``<br>`` (``breaks``; only inside HTML drawn with ``unsafe_allow_html``) or spaces.
    """
    escaped = str(text).translate(ENTITIES)  # one pass: no reference is escaped twice
    escaped = WWW_DOT.sub(r"\1&#46;", escaped)
    one_line = LINE_BREAKS.sub("<br>" if breaks else " ", escaped)
    escaped = one_line if breaks else SPACES.sub(" ", one_line).strip()
    return LINE_START.sub(lambda m: f"{m.group(1)}{m.group(2)}&#{ord(m.group(3))};", escaped)


def mask_secrets(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` URL and ``password=`` pair masked."""
    text = URL_SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}:{MASK}@" if m.group(3) else m.group(0), text)
    return KEY_SECRET.sub(lambda m: f"{m.group(1)}={MASK}", text)


def public_url(url: str) -> str:
    """A database URL fit for display: any password masked (by the regex too when the URL does not parse)."""
    from sqlalchemy.engine import make_url

    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except Exception:  # a malformed URL is still shown, masked
        shown = url
    return mask_secrets(shown)


def error_line(err: BaseException | str) -> str:
    """An error as one plain line (its first non-empty line, passwords masked, at most 300 characters).

    SQLAlchemy errors keep only the driver's message: not the SQL, parameters or "Background" link.
    """
    orig = getattr(err, "orig", None)
    source = orig if isinstance(orig, BaseException) and str(orig).strip() else err
    lines = [line.strip() for line in str(source).splitlines() if line.strip()]
    line = lines[0] if lines else type(err).__name__ if isinstance(err, BaseException) else ""
    line = mask_secrets(line)
    return line if len(line) <= ERROR_LINE_MAX else line[: ERROR_LINE_MAX - 1] + "…"
