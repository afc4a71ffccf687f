"""Markup to plain text: Markdown, reStructuredText and HTML lose their syntax and keep their headings as structure."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jasper_rag.ingest import markup
from jasper_rag.ingest.markup import MAX_PATH_CHARS, VisibleText, heading_line, markdown_sections, rst_sections

MARKUP_LEFT = ("**", "](", "`", "::", "===", "---", "\n#", "\n* ", "\n- ", ".. ")


def bodies(sections) -> dict[str | None, str]:
    return {section.heading: section.body for section in sections}


def assert_plain(sections) -> None:
    for section in sections:
        text = "\n" + section.text
        assert not [mark for mark in MARKUP_LEFT if mark in text], section.text


def html_sections(source: str):
    parser = VisibleText()
    parser.feed(source)
    parser.close()
    return parser.sections()


# ----------------------------------------------------------------- Markdown
MARKDOWN = """\
---
title: front matter is metadata
---

Before any heading, with **bold**, _emphasis_ and `code`.

# Distillation

A [link](https://example.com "title") and ![an *image*](pic.png), <https://auto.example>,
a soft break and an escaped \\*star\\*. Raw <b>HTML</b> stays text.

## Losses

* the **cosine** loss
* the *similarity* loss
  - nested `item`

3. three
4. four

> a quoted *remark*

```python
# a comment, not a heading
print("**not bold**")
```

| name | size |
|:-----|-----:|
| *small* | `64` |

Setext heading
--------------

Reference [link][ref] and ~~struck~~ text.

[ref]: https://example.com/ref

# Stages

Last words.
"""


def test_markdown_becomes_plain_text_under_its_headings():
    sections = markdown_sections(MARKDOWN)
    assert [section.heading for section in sections] == [
        None,
        "Distillation",
        "Distillation > Losses",
        "Distillation > Setext heading",
        "Stages",
    ]
    text = bodies(sections)
    assert text[None] == "Before any heading, with bold, emphasis and code."
    assert text["Distillation"] == (
        "A link and an image, https://auto.example, a soft break and an escaped *star*. Raw <b>HTML</b> stays text."
    )
    assert text["Distillation > Losses"] == (
        "the cosine loss\nthe similarity loss\nnested item\n\n3. three\n4. four\n\na quoted remark\n\n"
        '# a comment, not a heading\nprint("**not bold**")\n\nname | size\nsmall | 64'
    )
    assert text["Distillation > Setext heading"] == "Reference link and struck text."
    assert sections[-1].text == "Stages\n\nLast words."
    assert_plain(sections[:2] + sections[3:])  # the code block keeps its '**' and '#'


def test_markdown_headings_without_text_stay_on_the_path_of_their_subsections():
    sections = markdown_sections("# A\n## B\ntext b\n### C\n## D\ntext d\n")
    assert [(s.headings, s.body) for s in sections] == [(("A", "B"), "text b"), (("A", "D"), "text d")]
    assert markdown_sections("# Only\n## headings\n") == [markup.Section((), "Only\nheadings")]
    assert markdown_sections("---\nA rule, then a heading\n---\n\ntext")[0].heading == "A rule, then a heading"


def test_long_markdown_is_parsed_in_segments_as_a_whole(monkeypatch):
    parts = [f"# Part {i}\n\nSome **bold** text [{i}][r].\n\n- item {i}\n- more\n\n" for i in range(1200)]
    source = "[r]: https://example.com\n\n" + "".join(parts)
    assert len(source) > 2 * markup.SEGMENT_CHARS
    segmented = markdown_sections(source)
    monkeypatch.setattr(markup, "SEGMENT_CHARS", 10**9)
    monkeypatch.setattr(markup, "MAX_SEGMENT_CHARS", 10**9)
    assert segmented == markdown_sections(source)
    assert segmented[-1] == markup.Section(("Part 1199",), "Some bold text 1199.\n\nitem 1199\nmore")


def test_code_and_tables_longer_than_a_segment_keep_their_kind():
    rows = markup.MAX_SEGMENT_CHARS // 10
    code = "```\n" + "# not a heading\n" * rows + "```\n"
    table = "| a | b |\n|---|---|\n" + "| x | y |\n" * rows
    sections = markdown_sections(f"# Code\n\n{code}\n# Table\n\n{table}")
    assert [s.heading for s in sections] == ["Code", "Table"]
    assert set(sections[0].body.split("\n")) - {""} == {"# not a heading"}  # the code in two blocks
    assert sections[0].body.count("# not a heading") == rows
    assert set(sections[1].body.split("\n")) - {""} == {"a | b", "x | y"}  # the header again, after the cut
    assert sections[1].body.count("x | y") == rows


def test_a_huge_line_is_kept_in_pieces():
    word = "x" * (3 * markup.MAX_LINE_CHARS)
    (section,) = markdown_sections(f"# Big\n\n{word}")
    assert section.body.replace(" ", "") == word


# ----------------------------------------------------------------- reStructuredText
RST = """\
=========
 Top Doc
=========

:Author: Jane *Doe*

Intro with **bold**, *em*, ``lit eral``, :ref:`Label <target>`, :py:class:`~pkg.mod.Klass`,
`Python <https://python.org>`_, ref_, a footnote [1]_, |name|, \\*escaped\\* and 2 * 3 * 4.

.. _target:

Section One
===========

.. note:: This is a **note**
   on two lines.

.. warning::

   Be *careful*.

.. versionadded:: 2.1

- item one
  continues
- item two

1. first
2. second

Here is code::

    def f(x):
        return x + 2

.. code-block:: python
   :linenos:

   print("hi")

Subsection
----------

+--------+--------+
| Head 1 | Head 2 |
+========+========+
| a      | b *em* |
| more a |        |
+--------+--------+

=====  ======
Col A  Col B
=====  ======
x      ``y``
=====  ======

.. image:: pic.png
   :alt: A *diagram*

.. include:: /etc/passwd
.. raw:: html

   <script>alert(1)</script>

.. A comment
   on two lines.

.. |name| replace:: the substituted text

.. [1] The footnote.

Another Top
===========

----

After a transition.
"""


def test_rst_becomes_plain_text_under_its_titles():
    sections = rst_sections(RST)
    assert [section.heading for section in sections] == [
        "Top Doc",
        "Top Doc > Section One",
        "Top Doc > Section One > Subsection",
        "Top Doc > Another Top",
    ]
    text = bodies(sections)
    assert text["Top Doc"] == (
        "Author: Jane Doe\n\nIntro with bold, em, lit eral, Label, Klass, Python, ref, a footnote, "
        "the substituted text, *escaped* and 2 * 3 * 4."
    )
    assert text["Top Doc > Section One"] == (
        "Note: This is a note on two lines.\n\nWarning: Be careful.\n\nAdded in version 2.1\n\n"
        "item one continues\nitem two\n1. first\n2. second\n\nHere is code:\n\n"
        'def f(x):\n    return x + 2\n\nprint("hi")'
    )
    assert text["Top Doc > Section One > Subsection"] == (
        "Head 1 | Head 2\na more a | b em\n\nCol A | Col B\nx | y\n\nA diagram\n\nThe footnote."
    )
    assert text["Top Doc > Another Top"] == "After a transition."
    assert_plain(sections)
    everything = "".join(section.text for section in sections)
    assert "passwd" not in everything and "script" not in everything and "comment" not in everything


def test_rst_title_levels_follow_the_order_of_their_adornments():
    source = "One\n###\n\na\n\nTwo\n***\n\nb\n\nThree\n#####\n\nc\n\nFour\n****\n\nd\n\nFive\n##\n"
    sections = rst_sections(source)
    assert [s.heading for s in sections] == ["One", "One > Two", "Three", "Three > Four"]
    assert sections[-1].body == "d\n\nFive ##"  # an underline shorter than its title and than 4: text


@pytest.mark.parametrize(
    ("source", "plain"),
    [
        (":math:`x^2` and :sup:`2`", "x^2 and 2"),
        (":doc:`the guide <guide/index>` and :func:`!plain`", "the guide and plain"),
        ("`<https://example.com>`_ and anonymous__", "https://example.com and anonymous"),
        ("a snake_case name, __init__ and x_", "a snake_case name, __init__ and x"),
        ("``**literal**`` and ``a `b` c`` stay", "**literal** and a `b` c stay"),
        ("a\\ b and C:\\\\path", "ab and C:\\path"),
    ],
)
def test_rst_inline_markup(source, plain):
    assert markup.rst_inline(source) == plain


# ----------------------------------------------------------------- HTML
def test_html_headings_are_structure_and_the_title_heads_text_before_them():
    sections = html_sections(
        "<html><head><title>Page title</title><style>p {}</style></head><body>"
        "<nav>Home</nav><h1>Guide</h1><p>Intro\n  wrapped.</p><h2>Install <em>it</em></h2>"
        "<ul><li>pip</li><li>make</li></ul><pre>two\nlines</pre><h2>Use</h2><p>&lt;b&gt; is text</p>"
        "<script>alert(1)</script></body></html>"
    )
    assert [(s.heading, s.body) for s in sections] == [
        ("Page title", "Home"),
        ("Guide", "Intro wrapped."),
        ("Guide > Install it", "pip\nmake\ntwo\nlines"),
        ("Guide > Use", "<b> is text"),
    ]


def test_html_without_text_before_the_first_heading_drops_the_title():
    sections = html_sections("<title>T</title><h1>A</h1><p>x</p>")
    assert [(s.heading, s.body) for s in sections] == [("A", "x")]
    assert [(s.heading, s.body) for s in html_sections("<title>Only a title")] == [(None, "Only a title")]
    assert [(s.heading, s.body) for s in html_sections("<p>no headings</p>")] == [(None, "no headings")]


# ----------------------------------------------------------------- bounds
def test_long_titles_stay_in_the_text_and_paths_are_capped():
    title = "word " * 100
    (section,) = markdown_sections(f"# {title}\n\ntext")
    assert len(section.heading) <= markup.MAX_TITLE_CHARS and section.heading.endswith("…")
    assert section.body == f"{title.strip()}\n\ntext"
    path = heading_line(tuple(f"level {i} " + "x" * 100 for i in range(6)))
    assert len(path) <= MAX_PATH_CHARS and path.startswith("… > ") and path.endswith("x" * 100)


HOSTILE = {
    "emphasis": "*a " * 30_000,
    "literals": "``a `" * 30_000,
    "roles": ":a:`b` :" * 20_000,
    "references": "a_b." * 30_000,
    "colons": " :a" * 30_000 + ":",
    "brackets": "![" * 30_000,
    "nesting": "".join(" " * i + "- a\n" for i in range(2_000)),
    "directives": "".join("   " * i + ".. note::\n" for i in range(1_000)),
    "titles": "x\n==\n\n" * 20_000,
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_markup_is_read_in_bounded_time(name):
    source = HOSTILE[name]
    for read in (markdown_sections, rst_sections, html_sections):
        started = time.perf_counter()
        read(source)
        assert time.perf_counter() - started < 30, (name, read.__name__)  # quadratic would take minutes


MARKUP_PIECES = [*"ab `*_#=-:.|\\<>[]()!~+\n\t", "..", "::", "``", "**", "\n\n", "   "]
MARKUP_TEXT = st.lists(st.sampled_from(MARKUP_PIECES)).map("".join)


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(source=MARKUP_TEXT)
def test_any_markup_reads_without_error(source):
    for read in (markdown_sections, rst_sections, html_sections):
        for section in read(source):
            assert section.body.strip() and "\x00" not in section.text
            assert section.text.startswith(section.heading or "")
