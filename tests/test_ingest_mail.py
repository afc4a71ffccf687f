"""E-mail loaders (.eml, .mbox): bodies, headers, attachments, limits, hostile messages, and the pipeline."""

from __future__ import annotations

import logging
import time
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jasper_rag.ingest.loaders import LoadError, LoadLimits, file_type
from jasper_rag.ingest.mail import MAX_HEADER_CHARS, MAX_MIME_PARTS, NO_SUBJECT, sample_mail
from jasper_rag.ingest.pipeline import ingest_paths
from jasper_rag.store.doctor import check
from tests.hostile_files import mime_parts, nested_parts
from tests.ingest_support import load_tiny, make_store, save_tiny_model, small_settings

LIMITS = LoadLimits(100, 10**6, max_mail_messages=5, max_mail_message_bytes=2**20)
LF = policy.default.clone(linesep="\n")


def message(
    subject: str | None = "Search question", body: str | None = "the cat sat on the mat", **headers
) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = headers.pop("sender", "Ann Lee <ann@example.org>")
    mail["Date"] = "Tue, 03 Nov 2026 08:00:00 +0000"
    if subject is not None:
        mail["Subject"] = subject
    if body is not None:
        mail.set_content(body)
    return mail


def load(name: str, data: bytes, limits: LoadLimits = LIMITS):
    return file_type(Path(name)).load(Path(name), data, limits)


def mbox(*messages: EmailMessage | bytes) -> bytes:
    raw = [m if isinstance(m, bytes) else m.as_bytes(policy=LF) for m in messages]
    return b"".join(b"From ann@example.org Tue Nov  3 08:00:00 2026\n" + r + b"\n" for r in raw)


def test_a_plain_message_is_one_page_headed_by_its_subject_with_sender_date_and_attachment_names():
    mail = message(body="Hybrid search finds the part number.")
    mail.add_attachment(b"%PDF-1.4 secret words inside", maintype="application", subtype="pdf", filename="manual.pdf")
    mail.add_attachment("attached text is not read", filename="notes.txt")
    [page] = load("q.eml", mail.as_bytes()).pages
    assert page.heading == "Search question" and page.number is None
    lines = page.text.splitlines()
    assert lines[0] == "Search question"
    assert lines[1] == "From: Ann Lee <ann@example.org> | Date: Tue, 03 Nov 2026 08:00:00 +0000"
    assert "Hybrid search finds the part number." in page.text
    assert lines[-1] == "Attachments: manual.pdf, notes.txt"
    assert "secret" not in page.text and "not read" not in page.text


def test_plain_text_is_preferred_and_html_alone_gives_its_visible_text():
    both = message(body="plain version of the answer")
    both.add_alternative("<p>html version</p>", subtype="html")
    assert "plain version" in load("a.eml", both.as_bytes()).pages[0].text
    assert "html version" not in load("a.eml", both.as_bytes()).pages[0].text

    html = message(body=None)
    html.set_content(
        "<html><head><style>p {color: red}</style><script>alert(1)</script></head>"
        "<body><h1>Release</h1><p>The <b>lexical</b> index&nbsp;is fast.</p></body></html>",
        subtype="html",
    )
    text = load("h.eml", html.as_bytes()).pages[0].text
    assert "Release" in text and "The lexical index is fast." in text
    assert "<b>" not in text and "alert" not in text and "color" not in text


def test_encoded_headers_and_charsets_are_decoded():
    raw = (
        b"Subject: =?utf-8?q?Caf=C3=A9_r=C3=A9sum=C3=A9?=\n"
        b"From: =?iso-8859-1?q?Ren=E9?= <rene@example.org>\n"
        b"Content-Type: text/plain; charset=iso-8859-1\n\n"
        b"cr\xe8me br\xfbl\xe9e\n"
    )
    [page] = load("c.eml", raw).pages
    assert page.heading == "Café résumé" and "From: René <rene@example.org>" in page.text
    assert "crème brûlée" in page.text
    unknown = b"Subject: x\nContent-Type: text/plain; charset=no-such-charset\n\nd\xc3\xa9j\xc3\xa0 vu\n"
    assert "déjà vu" in load("u.eml", unknown).pages[0].text
    assert load("n.eml", message(subject=None).as_bytes()).pages[0].heading == NO_SUBJECT


def test_a_mailbox_is_one_page_per_message_in_order():
    data = mbox(message("first"), message("second", body="From the start of a line\nsecond body"), message("third"))
    data = data.replace(b"\nFrom the start", b"\n>From the start")  # how mbox writers quote body lines
    pages = load("box.mbox", data).pages
    assert [(p.number, p.heading) for p in pages] == [(1, "first"), (2, "second"), (3, "third")]
    assert "From the start of a line\nsecond body" in pages[1].text


def test_the_sample_thread_is_deterministic_and_loads():
    first, second = sample_mail(), sample_mail()
    assert first == second and list(first) == ["support-thread.mbox"]
    pages = load("support-thread.mbox", first["support-thread.mbox"], LoadLimits(100, 10**6)).pages
    assert len(pages) == 3 and pages[0].heading == "Hybrid search misses exact part numbers"
    assert all("search" in page.text for page in pages)


def test_limits_refuse_or_skip_with_the_count(caplog):
    with pytest.raises(LoadError, match=r"too many messages: over 5 \(JASPER_INGEST_MAX_MAIL_MESSAGES\)"):
        load("many.mbox", mbox(*[message(f"m{i}") for i in range(6)]))
    big = message("big", body="word " * 300_000)
    with pytest.raises(LoadError, match=r"message too large: .* MiB > limit 1\.0 MiB"):
        load("big.eml", big.as_bytes())
    caplog.set_level(logging.WARNING, "jasper_rag")
    pages = load("mixed.mbox", mbox(message("ok one"), big, message("ok two"))).pages
    assert [p.heading for p in pages] == ["ok one", "ok two"] and [p.number for p in pages] == [1, 3]
    assert "1 of 3 messages skipped (message 2: message too large" in caplog.text
    with pytest.raises(LoadError, match="no readable message: 1 refused"):
        load("bad.mbox", mbox(big))
    for data, reason in ((b"\x00\xff random", "not an mbox"), (b"", "not an mbox")):
        with pytest.raises(LoadError, match=reason):
            load("x.mbox", data)


def timed(name: str, data: bytes):
    """The load's result or LoadError, and its seconds."""
    started = time.perf_counter()
    try:
        result = load(name, data, LoadLimits(100, 10**6, max_mail_message_bytes=32 * 2**20))
    except LoadError as err:
        result = err
    return result, time.perf_counter() - started


def test_hostile_messages_are_bounded():
    result, seconds = timed("parts.eml", mime_parts(100_000))
    assert isinstance(result, LoadError) and "too many MIME parts" in str(result) and seconds < 2
    result, _ = timed("fine.eml", mime_parts(MAX_MIME_PARTS - 1))
    assert result.pages[0].text.count("part") >= MAX_MIME_PARTS - 1

    assert "deep text" in timed("nest.eml", nested_parts(40))[0].pages[0].text
    result, seconds = timed("deep.eml", nested_parts(MAX_MIME_PARTS))  # within the delimiter bound: parsed or refused
    assert seconds < 5 and ("nested too deeply" in str(result) or "deep text" in result.pages[0].text)
    result, seconds = timed("deeper.eml", nested_parts(100_000))
    assert "too many MIME parts" in str(result) and seconds < 2

    huge_subject = b"Subject: " + b"=?utf-8?q?abc?= " * 300_000 + b"\nFrom: " + b"a@b, " * 300_000 + b"\n\nbody\n"
    result, seconds = timed("subject.eml", huge_subject)
    assert len(result.pages[0].heading) <= MAX_HEADER_CHARS and "body" in result.pages[0].text and seconds < 2
    params = b"Subject: x\nContent-Type: multipart/mixed; " + b"a=b; " * 200_000 + b"boundary=x\n\nbody\n"
    result, seconds = timed("params.eml", params)
    assert "a Content-* header of" in str(result) and seconds < 2
    folded = b"Subject: x\nContent-Type: text/plain;\n" + b" a=b;\n" * 10_000 + b"\nbody\n"
    assert "a Content-* header of" in str(timed("folded.eml", folded)[0])


@settings(max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_fuzzed_messages_load_or_are_refused(data):
    seed = sample_mail()["support-thread.mbox"]
    raw = bytearray(seed)
    for _ in range(data.draw(st.integers(0, 12))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    raw = bytes(raw[: data.draw(st.integers(0, len(raw)))])
    for name in ("f.mbox", "f.eml"):
        try:
            content = load(name, raw)
        except LoadError:
            continue
        for page in content.pages:
            page.text.encode("utf-8")
            assert "\x00" not in page.text


def test_mail_goes_through_the_pipeline(tmp_path):
    folder = tmp_path / "mail"
    folder.mkdir()
    (folder / "support-thread.mbox").write_bytes(sample_mail()["support-thread.mbox"])
    (folder / "one.eml").write_bytes(message("the cat question").as_bytes())
    (folder / "broken.mbox").write_bytes(b"no envelope line here")
    encoder = load_tiny(save_tiny_model(tmp_path / "tiny"))
    store = make_store(tmp_path)
    summary = ingest_paths([folder], encoder, store, small_settings(), progress=False)
    outcomes = {Path(o.path).name: (o.status, o.reason) for o in summary.outcomes}
    assert outcomes["one.eml"][0] == outcomes["support-thread.mbox"][0] == "ingested"
    assert outcomes["broken.mbox"] == ("failed", "not an mbox: it must begin with a 'From ' envelope line")
    hits = store.fetch(store.index("chunk", "full").ids())
    headings = {(Path(h.path).name, h.heading) for h in hits}
    assert ("one.eml", "the cat question") in headings
    assert ("support-thread.mbox", "Re: Hybrid search misses exact part numbers") in headings
    assert {d.file_type for d in store.documents()} == {"email"}
    assert check(store).consistent
