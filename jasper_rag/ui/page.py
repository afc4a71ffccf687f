"""The Streamlit page: Search, FAQ, Ingest and About tabs over the configured model and store.

Drawing only: searching, matching, saving uploads and ingesting are done by ``jasper_rag.search``,
``jasper_rag.ui.uploads`` and ``ingest``; this module lays their results out.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from jasper_rag.config import Settings, get_settings
from jasper_rag.search import EmptyStoreError, FAQMatch, Searcher, SearchOptions
from jasper_rag.search.faq import FAQ_KEY, RULE_KEY, FAQMatcher
from jasper_rag.store import EntryKind
from jasper_rag.ui import resources
from jasper_rag.ui.cards import HERO, MODE_NAMES, STYLE, faq_card, hit_card, stats_html
from jasper_rag.ui.image_query import read_query_image, search_by_image, supports_image_queries
from jasper_rag.ui.ingest_run import ingest_uploads, summary_rows
from jasper_rag.ui.overview import KIND_NAMES, StoreOverview, eval_table, store_overview
from jasper_rag.ui.safe import error_line, public_url, safe_text
from jasper_rag.ui.uploads import UploadPolicy, clean_uploads, discard_failed, save_uploads, stored_paths
from jasper_rag.vision.images import ImageLoadError

LOG = logging.getLogger(__name__)
K_CHOICES = (5, 10, 20, 50)
EMPTY_INDEX = (
    "The index is empty. Add files in the **Ingest** tab, or from a terminal: `make ingest` (the sample "
    "corpus) or `jasper-rag ingest FOLDER`."
)


def render() -> None:
    """Draw the whole page (called by ``app.py`` on every rerun)."""
    st.set_page_config(page_title="jasper_rag search", page_icon="🔎", layout="centered")
    st.markdown(STYLE, unsafe_allow_html=True)
    st.markdown(HERO, unsafe_allow_html=True)
    settings = get_settings()
    searcher, problem = resources.open_searcher(settings)
    if problem is not None:
        st.error(f"**{problem.title}.** {problem.fix}")
        with st.expander("Details"):
            st.code(problem.detail, language=None)
        return
    try:
        render_tabs(searcher, settings)
    except SQLAlchemyError as err:  # the database went away after the page opened: one line, not a traceback
        st.error(
            f"**The database stopped answering** ({safe_text(error_line(err), breaks=False)}). "
            + resources.database_fix(settings)
        )
    except Exception as err:  # any other failure: one line on the page, the traceback in the server's log only
        LOG.exception("the search page failed")
        st.error(
            f"**Something went wrong** ({safe_text(f'{type(err).__name__}: {error_line(err)}', breaks=False)}). "
            "Press **Reload model and index** in the sidebar or reload the page; the server's log has the details."
        )


def render_tabs(searcher: Searcher, settings: Settings) -> None:
    overview = store_overview(searcher.store)
    render_sidebar(overview, settings)
    search_tab, faq_tab, ingest_tab, about_tab = st.tabs(["Search", "FAQ", "Ingest", "About"])
    with search_tab:
        render_search(searcher, overview)
    with faq_tab:
        render_faq(searcher, overview)
    with ingest_tab:
        render_ingest(searcher, settings)
    with about_tab:
        render_about(searcher, overview, settings)


def render_sidebar(overview: StoreOverview, settings: Settings) -> None:
    with st.sidebar:
        st.markdown("### Index")
        st.caption(f"Model `{settings.model}`")
        for kind, count in sorted(overview.entries.items()):
            st.markdown(f"**{count:,}** {KIND_NAMES.get(kind, kind)}")
        st.markdown(f"**{overview.documents.get('ingested', 0):,}** files")
        if st.button("Reload model and index", key="reload", help="After `make train` or a rebuild from the terminal."):
            resources.reload()
            st.rerun()


# ===================================================================== Search
def head_label(dim: int, largest: int) -> str:
    return f"{dim}-d (full)" if dim == largest else f"{dim}-d"


def render_search(searcher: Searcher, overview: StoreOverview) -> None:
    query = st.text_input(
        "Search", key="query", placeholder="Ask anything about your documents…", label_visibility="collapsed"
    )
    if overview.empty:
        st.info(EMPTY_INDEX)
        return
    dims = sorted(set(overview.heads.values()), reverse=True)
    mode_col, head_col, k_col, kind_col, type_col = st.columns([1.3, 1.1, 0.8, 1.4, 1.4])
    mode = mode_col.selectbox(
        "Mode",
        list(MODE_NAMES),
        index=list(MODE_NAMES).index(SearchOptions().mode),
        format_func=str.capitalize,
        key="mode",
        help="Hybrid finds both what the words say and what they mean; dense only by meaning, lexical only by words.",
    )
    dim = head_col.selectbox("Head", dims, format_func=lambda d: head_label(d, dims[0]), key="dim")
    k = k_col.selectbox("Results", K_CHOICES, index=1, key="k")
    kinds = kind_col.multiselect(
        "Kinds",
        sorted(overview.entries),
        format_func=lambda kind: KIND_NAMES.get(kind, kind),
        placeholder="all",
        key="kinds",
    )
    file_types = type_col.multiselect("File types", sorted(overview.file_types), placeholder="all", key="types")
    folder_col, fusion_col, funnel_col = st.columns([2.6, 1.4, 2.0])
    folder = folder_col.text_input(
        "Folder", key="folder", placeholder="all folders", help="Only files under this folder of the ingested tree."
    )
    fusion = fusion_col.selectbox(
        "Fusion",
        ["mix", "minmax", "rrf"],
        key="fusion",
        disabled=mode != "hybrid",
        format_func=lambda name: {"mix": "score mix", "minmax": "min-max mix", "rrf": "rank fusion (RRF)"}[name],
        help="How hybrid combines the two rankings: an equal mix of the scores, each divided by its best "
        "(score mix) or scaled from worst to best (min-max mix), or reciprocal ranks (RRF).",
    )
    single_stage = len(dims) < 2 or dim == dims[-1] or mode == "lexical"
    funnel = (
        funnel_col.toggle(
            "Funnel search",
            key="funnel",
            disabled=single_stage,
            help=f"Shortlist with the smallest head ({dims[-1]}-d), then re-score exactly with the chosen head.",
        )
        and not single_stage
    )
    image = image_query_input(searcher)
    if image is None and not query.strip():
        st.caption(f"Type a question and press Enter. {sum(overview.entries.values()):,} entries indexed.")
        return
    started = time.perf_counter()
    try:
        options = searcher.resolve(
            k=k,
            mode=mode if image is None else "dense",
            fusion=fusion,
            dim=dim,
            kinds=kinds or None,
            file_types=file_types or None,
            path_prefix=folder.strip() or None,
            funnel=funnel,
        )
        hits = searcher.search(query, options=options) if image is None else search_by_image(searcher, image, options)
    except (EmptyStoreError, ValueError) as err:  # the store changed under us (rebuilt, emptied)
        st.error(f"{safe_text(error_line(err), breaks=False)}. Press **Reload model and index** in the sidebar.")
        return
    seconds = time.perf_counter() - started
    shown_mode = hits[0].mode if hits else options.mode
    st.markdown(
        stats_html(len(hits), None if image is not None else query, seconds, dim, funnel, shown_mode),
        unsafe_allow_html=True,
    )
    if not hits:
        st.info("No results. Remove a filter, or ingest more files.")
    for rank, hit in enumerate(hits, start=1):
        st.markdown(hit_card(hit, query if image is None else "", rank), unsafe_allow_html=True)


def image_query_input(searcher: Searcher):
    """The uploaded query image (or None); explains why image search is off when the model can't see."""
    with st.expander("Search by image"):
        if not supports_image_queries(searcher):
            st.caption(
                "Image search needs a model with a vision tower: run `make train-vision`, then "
                "**Reload model and index** in the sidebar. The loaded model reads text only."
            )
            return None
        max_mb = get_settings().ingest_max_file_mb
        upload = st.file_uploader(
            "An image (PNG, JPEG, WebP, GIF, BMP)", key="image_query", max_upload_size=max(1, math.ceil(max_mb))
        )
        if upload is None:
            return None
        try:  # the size and pixel limits are checked here, on the server, whatever the browser enforced
            image = read_query_image(upload.name, upload.getvalue(), max_mb)
        except ImageLoadError as err:  # names the uploaded file: shown inert
            st.error(safe_text(error_line(err), breaks=False))
            return None
        st.image(image, width=160)
        return image


# ===================================================================== FAQ
def render_faq(searcher: Searcher, overview: StoreOverview) -> None:
    question = st.text_input("Question", key="faq_question", placeholder="Ask a question, get the stored answer…")
    if EntryKind.FAQ not in overview.entries:
        st.info(
            "No FAQ entries yet. Ingest a `.csv` or `.jsonl` file with `question` and `answer` columns "
            "(the **Ingest** tab or `jasper-rag ingest`)."
        )
        return
    stored = searcher.encoder.config.extra.get(FAQ_KEY, {})
    threshold: float | None = None
    if RULE_KEY in stored:
        st.caption(
            "Answers when the best entry's cosine reaches this FAQ's own threshold and leads the next entry by "
            "the model's margin (calibrated for this model; the reason is shown with each answer)."
        )
    elif "threshold" in stored:
        st.caption(f"Answers when the cosine reaches {float(stored['threshold']):.3f} (calibrated for this model).")
    else:
        st.warning(
            "This model has no calibrated FAQ threshold, so it cannot tell a match from a near miss by itself "
            "(`jasper-rag calibrate-faq MODEL` calibrates it). The nearest questions are shown; set a threshold "
            "to get answers."
        )
        threshold = st.number_input(
            "Answer when the cosine reaches", 0.0, 1.0, value=None, step=0.01, key="faq_threshold"
        )
        if threshold is None:
            if question.strip():
                hits = searcher.search(question, k=3, kinds=[EntryKind.FAQ])
                render_candidates([FAQMatch.from_hit(hit) for hit in hits], question)
            return
    if not question.strip():
        return
    lookup = FAQMatcher(searcher, threshold=threshold).lookup(question)
    if lookup.match is not None:
        st.markdown(faq_card(lookup.match, question, "Answer", lookup.reason), unsafe_allow_html=True)
        return
    st.warning(f"No confident match: {safe_text(lookup.reason, breaks=False)}.")
    render_candidates(lookup.candidates, question)


def render_candidates(candidates: list[FAQMatch], question: str) -> None:
    st.markdown("**Nearest questions**")
    for number, candidate in enumerate(candidates, start=1):
        st.markdown(faq_card(candidate, question, f"Candidate {number}"), unsafe_allow_html=True)


# ===================================================================== Ingest
def render_ingest(searcher: Searcher, settings: Settings) -> None:
    policy = UploadPolicy.from_settings(settings)
    st.caption(f"Accepted: {policy.describe()}. Saved under `{policy.folder}` with generated names.")
    files = st.file_uploader(
        "Files to add",  # no type=: other types are refused below with a reason, not by an exception
        accept_multiple_files=True,
        max_upload_size=max(1, math.ceil(policy.max_mb)),
        key="uploads",
    )
    if st.button(f"Ingest {len(files)} file(s)", type="primary", disabled=not files, key="ingest"):
        saved, refused = save_uploads(((file.name, file.getvalue()) for file in files), policy)
        bar = st.progress(0.0, text="Starting…")

        def on_file(done: int, total: int, name: str) -> None:
            text = f"Embedding {name} ({done + 1}/{total})…" if name else "Done"
            bar.progress(done / total if total else 1.0, text=text)

        summary = ingest_uploads(saved, searcher.encoder, searcher.store, settings, on_file) if saved else None
        bar.progress(1.0, text="Done")
        kept = stored_paths(searcher.store.documents())  # the folder keeps only what the store uses
        if summary is not None:
            discard_failed(saved, summary.outcomes, kept)
        clean_uploads(policy.folder, kept)
        st.session_state["ingest_report"] = {
            "rows": [asdict(row) for row in summary_rows(saved, refused, summary)],
            "embedded": sum(summary.embedded.values()) if summary else 0,
            "seconds": summary.seconds if summary else 0.0,
        }
        st.rerun()  # redraw everything (sidebar counts, filters) with the new entries
    report = st.session_state.get("ingest_report")
    if report:
        render_ingest_report(report)


def render_ingest_report(report: dict) -> None:
    rows = report["rows"]
    good = sum(row["status"] in ("ingested", "unchanged", "not embedded") for row in rows)
    bad = sum(row["status"] in ("failed", "refused") for row in rows)
    went_in, failed, entries, seconds = st.columns(4)
    went_in.metric("Files in", good)
    failed.metric("Failed or refused", bad)
    entries.metric("Entries embedded", report["embedded"])
    seconds.metric("Seconds", f"{report['seconds']:.1f}")
    if bad:
        st.error("Some files did not go in; the reasons are below.")
    else:
        st.success("Every file went in. New entries are searchable now.")
    if any(row["status"] == "not embedded" for row in rows):
        st.info("Images are stored, and become searchable once the model has a vision tower (`make train-vision`).")
    st.dataframe(rows, hide_index=True, width="stretch")


# ===================================================================== About
def render_about(searcher: Searcher, overview: StoreOverview, settings: Settings) -> None:
    config = searcher.encoder.config
    st.markdown(f"#### Model `{settings.model}`")
    heads = overview.heads or dict(config.heads)
    st.markdown(
        f"Built from **{config.source}**, hidden size {searcher.encoder.hidden_size}; heads: "
        + (", ".join(f"`{name}` {dim}-d" for name, dim in sorted(heads.items(), key=lambda h: -h[1])) or "none")
        + (" · vision tower attached" if supports_image_queries(searcher) else "")
    )
    faq = config.extra.get(FAQ_KEY, {})
    if "threshold" in faq:
        st.caption(f"FAQ threshold {faq['threshold']:.3f} (calibrated for precision {faq.get('target_precision')})")
    st.markdown("#### Index")
    if overview.empty:
        st.info(EMPTY_INDEX)
    else:
        columns = st.columns(max(1, len(overview.entries)) + 1)
        for column, (kind, count) in zip(columns, sorted(overview.entries.items()), strict=False):
            label = KIND_NAMES.get(kind, kind)
            column.metric(label[0].upper() + label[1:], f"{count:,}")
        columns[-1].metric("Files", f"{overview.documents.get('ingested', 0):,}")
        st.dataframe(
            [asdict(row) for row in overview.indexes],
            hide_index=True,
            width="stretch",
            column_config={"size_kb": st.column_config.NumberColumn("size", format="%.1f KB")},
        )
    other = {status: n for status, n in overview.documents.items() if status != "ingested"}
    if other:
        st.caption("Other files: " + ", ".join(f"{n} {status}" for status, n in sorted(other.items())))
        if "not embedded" in other:
            st.caption("Files *not embedded* (images) become searchable once the model has a vision tower.")
    st.caption(f"Indexes in `{settings.indexes_dir}` · metadata `{public_url(settings.database_url)}`")
    st.markdown("#### Latest evaluation")
    table = eval_table(settings.reports_dir)
    if table:
        st.markdown(table)
    else:
        st.caption("No `reports/eval.md` yet: `make eval` writes it.")
