"""The FAQ abstention rule: its decisions and reasons, the per-FAQ threshold, the matcher over a store,
its calibration on the FAQ-style development data, and (with models/jasper-quick) the held-out figures."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from jasper_rag.cli import app
from jasper_rag.config import Settings
from jasper_rag.encoder import CONFIG_FILE, load_encoder
from jasper_rag.eval import faq_dev
from jasper_rag.ingest.pipeline import ingest_paths
from jasper_rag.search import FAQMatcher, Searcher
from jasper_rag.search.faq import (
    ENTRIES_KEY,
    ENTRY_VECTORS,
    FAQ_KEY,
    RULE_KEY,
    FAQMatch,
    FAQProfile,
    FAQRule,
    UncalibratedModelError,
    decide,
    is_current_rule,
    leave_one_out_cosines,
)
from jasper_rag.store import Store
from jasper_rag.store.heads import combine_entry_vectors
from jasper_rag.store.models import faq_embedding_texts
from tests.conftest import ROOT, make_tiny_encoder, stored_faq_cosine

FAQ_ROWS = [
    ("what is the capital of france", "paris"),
    ("is the dog fast", "yes"),
    ("is the car slow", "no"),
    ("what fruit is red", "an apple"),
    ("where is the cat", "on the mat"),
]


def exact_cosine(searcher: Searcher, row: int) -> float:
    """The cosine of FAQ_ROWS[row]'s own question to its stored entry (question and answer together)."""
    question, answer = FAQ_ROWS[row]
    return stored_faq_cosine(searcher.encoder, question, question, answer)


def match(score: float, question: str = "q") -> FAQMatch:
    return FAQMatch(question=question, answer="a", score=score, path="/faq.csv", id=1)


# ===================================================================== the rule
def test_answers_when_the_cosine_and_the_margin_are_both_reached() -> None:
    decision = decide(
        [match(0.81), match(0.69), match(0.5)], threshold=0.74, margin=0.05, source="this FAQ's threshold"
    )
    assert decision.answer
    assert decision.reason == (
        "answered: cosine 0.81 >= 0.74 (this FAQ's threshold) and margin 0.12 >= 0.05 over the next entry"
    )


def test_abstains_below_the_threshold_and_says_so() -> None:
    decision = decide([match(0.52), match(0.3)], threshold=0.74, margin=0.05)
    assert not decision.answer and decision.reason.startswith("abstained: best match cosine 0.52 below 0.74")


def test_abstains_when_the_next_entry_is_too_close() -> None:
    decision = decide([match(0.80), match(0.79)], threshold=0.74, margin=0.05)
    assert not decision.answer
    assert "only 0.01 ahead of the next entry (needs 0.05)" in decision.reason


def test_a_margin_only_rule_leaves_the_cosine_test_out_of_the_reason() -> None:
    answered = decide([match(0.87), match(0.48)], threshold=-1.0, margin=0.2, source="fixed threshold")
    assert (
        answered.answer
        and answered.reason == "answered: best match cosine 0.87, margin 0.39 >= 0.20 over the next entry"
    )
    refused = decide([match(0.87), match(0.80)], threshold=-1.0, margin=0.2)
    assert not refused.answer
    assert refused.reason == "abstained: best match cosine 0.87 only 0.07 ahead of the next entry (needs 0.20)"


def test_margin_zero_is_a_plain_threshold_and_no_entries_abstain() -> None:
    assert decide([match(0.80), match(0.80)], threshold=0.74).answer  # ties do not matter without a margin
    assert decide([match(0.9)], threshold=0.5, margin=0.1).reason.endswith("and no other entry")
    assert not decide([], threshold=0.0).answer


def test_the_threshold_follows_the_faq_and_falls_back_when_it_is_too_small() -> None:
    rule = FAQRule(offset=0.05, margin=0.02, quantile=0.5, fallback=0.7)
    assert rule.threshold(FAQProfile(30, 0.55, 0.5)) == (pytest.approx(0.60), "this FAQ's threshold")
    assert rule.threshold(FAQProfile(30, 0.75, 0.5))[0] == pytest.approx(0.80)  # a denser FAQ asks for more
    assert rule.threshold(FAQProfile(2, None, 0.5))[0] == 0.7
    assert FAQRule(offset=0.6, relative=False).threshold(None) == (0.6, "fixed threshold")
    with pytest.raises(UncalibratedModelError):
        FAQRule(offset=0.0).threshold(FAQProfile(2, None, 0.5))
    assert FAQRule.from_dict({**rule.as_dict(), "family": "faq+margin", "design": {}}) == rule


def test_leave_one_out_cosines_are_each_questions_nearest_other_entry() -> None:
    vectors = np.eye(4, dtype=np.float32)
    vectors[3] = vectors[0]  # a duplicate of entry 0
    cosines = leave_one_out_cosines(vectors)
    assert cosines.tolist() == [1.0, 0.0, 0.0, 1.0]
    assert len(leave_one_out_cosines(np.eye(10, dtype=np.float32), sample=4)) == 4
    assert len(leave_one_out_cosines(np.eye(1, dtype=np.float32))) == 0
    profile = FAQProfile.from_vectors(np.eye(6, dtype=np.float32), 0.5)
    assert profile.entries == 6 and profile.reference == 0.0
    assert FAQProfile.from_vectors(np.eye(2, dtype=np.float32), 0.5).reference is None


def test_the_vectorised_rule_of_the_report_decides_as_the_matcher_does() -> None:
    rng = np.random.default_rng(0)
    best, lead = rng.uniform(0.2, 0.9, 200), rng.uniform(0.0, 0.2, 200)
    scored = faq_dev.ScoredFAQ("synthetic", [0] * 200, ["paraphrase"] * 200, ["q"] * 200, ["b"] * 6, np.full(6, 0.5))
    scored.chosen["dense"], scored.best["dense"], scored.lead["dense"] = np.zeros(200, int), best, lead
    rule = FAQRule(offset=0.05, margin=0.08)
    answered = faq_dev.rule_answers(rule)(scored, "dense")
    threshold, source = rule.threshold(FAQProfile(6, scored.reference(), 0.5))
    one_by_one = [
        decide([match(b), match(b - g)], threshold, rule.margin, source).answer for b, g in zip(best, lead, strict=True)
    ]
    assert answered.tolist() == one_by_one


def test_outcome_counts_right_wrong_and_refused() -> None:
    scored = faq_dev.ScoredFAQ(
        "s", [0, 1, 1, None, None], ["paraphrase", "paraphrase", "rewording", "in-domain", "off-topic"],
        ["a", "b", "c", "d", "e"], ["x", "y"], np.zeros(0),
    )  # fmt: skip
    scored.chosen["dense"] = np.array([0, 0, 1, 0, 1])
    scored.best["dense"] = np.array([0.9, 0.8, 0.9, 0.8, 0.1])
    scored.lead["dense"] = np.full(5, 0.5)
    result = faq_dev.outcome([scored], "dense", faq_dev.rule_answers(FAQRule(offset=0.5, relative=False)))
    assert (result.paraphrases, result.correct, result.wrong, result.ranked_right) == (2, 1, 1, 1)
    assert (result.rewordings, result.rewordings_correct) == (1, 1)
    assert (result.unrelated, result.refused, result.in_domain_refused, result.off_topic_refused) == (2, 1, 0, 1)
    assert result.rates()["wrong"] == 0.5 and not result.meets_goal()


# ===================================================================== the matcher over a store
@pytest.fixture
def faq_store(tmp_path, tiny_encoder, store_backend):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "faq.csv").write_text("question,answer\n" + "".join(f"{q},{a}\n" for q, a in FAQ_ROWS))
    settings = Settings(indexes_dir=tmp_path / "idx")
    store = Store.open(settings)
    assert ingest_paths([folder], tiny_encoder, store, settings, progress=False).exit_code == 0
    return Searcher(store, tiny_encoder), folder, settings


# A tiny random model's entries are all close (this FAQ's reference cosine is about 0.98); its exact
# questions score 0.93-0.97 against their entries (question and answer together): answered below it.
OFFSET = -0.2


def with_rule(searcher: Searcher, rule: FAQRule, threshold: float | None = 0.99) -> Searcher:
    stored = {**rule.as_dict(), ENTRIES_KEY: ENTRY_VECTORS}
    record = {RULE_KEY: {"dense": stored, "hybrid": stored}}
    if threshold is not None:
        record["threshold"] = threshold
    searcher.encoder.config.extra[FAQ_KEY] = record
    return searcher


def test_matcher_uses_the_faqs_own_threshold_and_gives_the_reason(faq_store) -> None:
    searcher, _, _ = faq_store
    matcher = FAQMatcher(with_rule(searcher, FAQRule(offset=OFFSET, margin=0.0)))
    profile = matcher.profile()
    assert profile is not None and profile.entries == len(FAQ_ROWS) and profile.reference is not None
    cosine = exact_cosine(searcher, 0)
    assert cosine >= profile.reference + OFFSET  # the exact question is answered under this FAQ's own threshold
    found = matcher.lookup("what is the capital of france")
    assert found.match is not None and found.match.answer == "paris"
    assert found.threshold == pytest.approx(profile.reference + OFFSET)
    assert found.reason.startswith(f"answered: cosine {cosine:.2f} >= ") and "(this FAQ's threshold)" in found.reason
    strict = FAQMatcher(with_rule(searcher, FAQRule(offset=2.0))).lookup("what is the capital of france")
    assert strict.match is None and strict.reason.startswith(f"abstained: best match cosine {cosine:.2f} below")
    assert len(strict.candidates) == 3 and json.loads(json.dumps(strict.to_dict()))["reason"] == strict.reason


def test_an_explicit_threshold_overrides_the_rule(faq_store) -> None:
    searcher, _, _ = faq_store
    matcher = FAQMatcher(with_rule(searcher, FAQRule(offset=2.0)), threshold=0.5)
    found = matcher.lookup("what is the capital of france")
    assert found.match is not None and "(threshold set by hand)" in found.reason and found.margin == 0.0


def test_hybrid_mode_reads_the_cosine_not_the_fused_score(faq_store) -> None:
    searcher, _, _ = faq_store
    found = FAQMatcher(with_rule(searcher, FAQRule(offset=OFFSET)), mode="hybrid").lookup("is the dog fast")
    assert found.match is not None and found.match.answer == "yes"
    assert found.match.score == pytest.approx(exact_cosine(searcher, 1), abs=1e-4)
    assert found.candidates[0].lexical_rank == 1 and found.candidates[0].bm25 is not None
    with pytest.raises(ValueError, match="dense, hybrid"):
        FAQMatcher(searcher, mode="lexical")


def test_a_model_with_only_a_plain_threshold_keeps_it_and_none_is_an_error(faq_store) -> None:
    searcher, _, _ = faq_store
    searcher.encoder.config.extra[FAQ_KEY] = {"threshold": exact_cosine(searcher, 1) - 1e-3}
    found = FAQMatcher(searcher).lookup("is the dog fast")
    assert found.match is not None and "(the model's calibrated threshold)" in found.reason
    searcher.encoder.config.extra.pop(FAQ_KEY)
    with pytest.raises(UncalibratedModelError):
        FAQMatcher(searcher)


def test_the_profile_follows_the_store_generation(faq_store, tiny_encoder) -> None:
    searcher, folder, settings = faq_store
    matcher = FAQMatcher(with_rule(searcher, FAQRule(offset=0.0)))
    assert matcher.profile().entries == len(FAQ_ROWS)
    (folder / "more.csv").write_text("question,answer\nwhat is the red fruit,apple\n")
    assert ingest_paths([folder], tiny_encoder, searcher.store, settings, progress=False).exit_code == 0
    assert matcher.profile().entries == len(FAQ_ROWS) + 1


def test_faq_command_prints_the_reason(faq_store, tmp_path, monkeypatch) -> None:
    searcher, _, settings = faq_store
    model = tmp_path / "model"
    with_rule(searcher, FAQRule(offset=OFFSET)).encoder.save(model)
    monkeypatch.setenv("JASPER_INDEXES_DIR", str(settings.indexes_dir))
    from jasper_rag.config import get_settings

    get_settings.cache_clear()
    try:
        answered = CliRunner().invoke(app, ["faq", "is the dog fast", "--model", str(model)])
        refused = CliRunner().invoke(app, ["faq", "banana", "--model", str(model), "--threshold", "1.5", "--json"])
    finally:
        get_settings.cache_clear()
    assert answered.exit_code == 0, answered.output
    assert "A: yes" in answered.output and f"answered: cosine {exact_cosine(searcher, 1):.2f} >=" in answered.output
    assert refused.exit_code == 0, refused.output
    assert json.loads(refused.output)["reason"].startswith("abstained: best match cosine")


# ===================================================================== calibration on the development data
def test_calibrate_faq_stores_a_rule_per_mode_and_if_missing_keeps_it(tmp_path, one_torch_thread) -> None:
    folder = make_tiny_encoder(tmp_path, {"full": 48}).save(tmp_path / "model")
    result = CliRunner().invoke(app, ["calibrate-faq", str(folder)])
    assert result.exit_code == 0, result.output
    stored = json.loads((folder / CONFIG_FILE).read_text())["extra"][FAQ_KEY]
    assert "threshold" in stored and set(stored[RULE_KEY]) == {"dense", "hybrid"}
    for record in stored[RULE_KEY].values():
        assert record["family"] in faq_dev.SELECTABLE and record["source"] == "faq-dev design half"
        assert FAQRule.from_dict(record).margin >= 0 and record[ENTRIES_KEY] == ENTRY_VECTORS
        if record["family"].startswith("faq"):  # small FAQs: the best fixed cosine of the design half
            assert record["fallback"] is not None and -1.0 <= record["fallback"] <= 1.0
    again = CliRunner().invoke(app, ["calibrate-faq", str(folder), "--if-missing"])
    assert again.exit_code == 0 and "already stores an FAQ rule" in again.output


def test_a_rule_fitted_on_question_only_vectors_is_recalibrated_and_warned_about(
    tmp_path, one_torch_thread, caplog
) -> None:
    folder = make_tiny_encoder(tmp_path, {"full": 48}).save(tmp_path / "model")
    config = json.loads((folder / CONFIG_FILE).read_text())
    config["extra"][FAQ_KEY] = {"threshold": 0.9, RULE_KEY: {"dense": FAQRule(0.05).as_dict()}}
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    assert not is_current_rule(config["extra"][FAQ_KEY])
    store = Store.open(Settings(indexes_dir=tmp_path / "idx"))
    with caplog.at_level("WARNING", logger="jasper_rag.search.faq"):
        FAQMatcher(Searcher(store, load_encoder(folder, device="cpu")))
    assert "calibrated on question-only entry vectors" in caplog.text
    result = CliRunner().invoke(app, ["calibrate-faq", str(folder), "--if-missing"])
    assert result.exit_code == 0 and "nothing to do" not in result.output
    assert is_current_rule(json.loads((folder / CONFIG_FILE).read_text())["extra"][FAQ_KEY])


def test_an_faq_entry_vector_is_its_question_and_answer_together(tiny_encoder) -> None:
    assert faq_embedding_texts("q?", "an answer") == ["q?", "an answer"]
    assert faq_embedding_texts("q?", "  ") == faq_embedding_texts("q?", None) == ["q?"]
    parts = [["is the dog fast", "yes"], ["where is the cat"]]
    vectors = tiny_encoder.encode(["is the dog fast", "yes", "where is the cat"])
    combined = combine_entry_vectors(vectors, parts)
    expected = vectors[0] + vectors[1]
    assert np.allclose(combined[0], expected / np.linalg.norm(expected), atol=1e-6)
    assert np.allclose(combined[1], vectors[2], atol=1e-6)
    with pytest.raises(ValueError, match="at least one text"):
        combine_entry_vectors(vectors, [["a"], []])
    assert combine_entry_vectors(vectors[:0], []).shape == (0, vectors.shape[1])


def test_fit_keeps_the_goals_limits_when_it_can() -> None:
    scored = faq_dev.ScoredFAQ(
        "s", [0, 0, 0, None], ["paraphrase"] * 3 + ["off-topic"], ["a", "b", "c", "d"], ["x"], np.zeros(0)
    )
    scored.chosen["dense"] = np.zeros(4, int)
    scored.best["dense"] = np.array([0.9, 0.7, 0.5, 0.6])
    scored.lead["dense"] = np.full(4, np.inf)
    family = next(f for f in faq_dev.families(None) if f.name == "cosine")
    (cosine,), result = faq_dev.fit(family, [scored], "dense")
    assert 0.6 < cosine <= 0.7 and (result.correct, result.refused) == (2, 1)


# ===================================================================== with the in-house model
QUICK = ROOT / "models" / "jasper-quick"


@pytest.mark.integration
@pytest.mark.parametrize("model", ["minilm-l6", "jasper-quick"])
def test_held_out_faqs_answer_more_than_the_sts_threshold_and_refuse_the_unrelated(model: str) -> None:
    """The rule calibrated on the design half keeps the goal's limits there (<= 5% wrong, >= 95% of
    unrelated refused); on the held-out FAQs (never tuned on) it answers more paraphrases correctly than
    the STS-calibrated threshold and keeps both limits too. Not asserted, as it is not met
    (docs/faq-calibration.md, reports/faq.md): the goal's 85% correct (the ranking alone stays below it
    on these paraphrases)."""

    if model == "jasper-quick":
        if not (QUICK / CONFIG_FILE).is_file():
            pytest.skip("models/jasper-quick is missing: `make train` builds it")
        model = str(QUICK)
    encoder = load_encoder(model, device="cpu")
    head = encoder.at(max(encoder.dims))
    sts = encoder.config.extra.get(FAQ_KEY, {}).get("threshold")
    if sts is None:
        sts = faq_dev.sts_rule(head)
    design = [faq_dev.score_faq(head, faq) for faq in faq_dev.load_half("design")]
    test = [faq_dev.score_faq(head, faq) for faq in faq_dev.load_half("test")]
    rule, _, fitted = faq_dev.calibrate_faq_rule(head, "dense", design)
    assert fitted.meets_goal()  # within the limits where it was calibrated
    chosen = faq_dev.outcome(test, "dense", faq_dev.rule_answers(rule)).rates()
    current = faq_dev.outcome(test, "dense", faq_dev.rule_answers(FAQRule(offset=sts, relative=False))).rates()
    assert chosen["correct"] > current["correct"]
    assert chosen["refused"] >= faq_dev.MIN_REFUSED and chosen["wrong"] <= faq_dev.MAX_WRONG
