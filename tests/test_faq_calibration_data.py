"""The packaged FAQ calibration pairs (jasper_rag/data/faq-calibration.tsv) and `calibrate-faq`'s default."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jasper_rag.cli import app
from jasper_rag.encoder import CONFIG_FILE
from jasper_rag.eval.data import load_sts_pairs
from jasper_rag.search.faq import FAQ_KEY, PACKAGED_PAIRS, packaged_calibration_pairs, sts_calibration_set
from tests.conftest import make_tiny_encoder

# docs/faq-calibration.md and jasper_rag/data/README.md quote these counts and the thresholds measured on them.
PARAPHRASES = 218  # gold >= 4: a question that paraphrases the FAQ entry
NEAR_MISSES = 163  # gold <= 2.5, file "jasper-faq": a same-domain question sharing words with the entry
OFF_TOPIC = 172  # gold <= 1, file "jasper-faq-<kind>": a question no entry covers at all
RELATED = 19  # 2.5 < gold < 4: an important detail differs; left out of the calibration
PAIRS = PARAPHRASES + NEAR_MISSES + OFF_TOPIC + RELATED
OFF_TOPIC_KINDS = {"jasper-faq-uncovered", "jasper-faq-otherdomain", "jasper-faq-general", "jasper-faq-chitchat"}


@pytest.fixture(scope="module")
def packaged() -> Path:
    resource = packaged_calibration_pairs()
    assert resource.is_file(), "jasper_rag/data/faq-calibration.tsv is missing from the package"
    return Path(str(resource))


@pytest.fixture(scope="module")
def rows(packaged: Path) -> list[list[str]]:
    return [line.split("\t") for line in packaged.read_text(encoding="utf-8").splitlines()]


def test_every_row_has_the_sts_columns(rows) -> None:
    assert len(rows) == PAIRS
    for number, row in enumerate(rows, start=1):
        assert len(row) == 7, (number, row)
        genre, file, year, ident, score, first, second = row
        assert genre and file and year and ident, (number, row)
        assert 0.0 <= float(score) <= 5.0, (number, score)
        assert first and second and first == first.strip() and second == second.strip(), (number, row)
        assert first != second, (number, row)
    assert len({row[3] for row in rows}) == len(rows), "ids are not unique"
    assert len({row[0] for row in rows}) >= 15, "fewer than 15 domains"


def test_no_duplicate_pairs(rows) -> None:
    pairs = Counter((row[5], row[6]) for row in rows)
    assert [pair for pair, count in pairs.items() if count > 1] == []
    unordered = Counter(frozenset((row[5], row[6])) for row in rows)
    assert [pair for pair, count in unordered.items() if count > 1] == []


def test_parses_into_paraphrases_and_negatives(packaged: Path, rows) -> None:
    assert len(load_sts_pairs(packaged)) == PAIRS
    bank, questions, expected = sts_calibration_set(packaged)
    paraphrases = sum(want is not None for want in expected)
    negatives = sum(want is None for want in expected)
    assert paraphrases == sum(float(row[4]) >= 4.0 for row in rows) == PARAPHRASES
    assert negatives == sum(float(row[4]) <= 2.5 for row in rows) == NEAR_MISSES + OFF_TOPIC
    assert sum(2.5 < float(row[4]) < 4.0 for row in rows) == RELATED
    assert len(bank) == len(set(bank)) and len(questions) == len(set(questions))
    assert all(want is None or 0 <= want < len(bank) for want in expected)
    # Every negative sits next to an FAQ entry it does not ask about: its partner is in the bank.
    entries = set(bank)
    assert all(row[6] in entries for row in rows), "a pair's second sentence is not an FAQ entry"
    assert not entries & set(questions), "an FAQ entry is also asked as a question"


def test_both_kinds_of_negatives_are_present(rows) -> None:
    # Near misses (same domain, many shared words) and off-topic questions the FAQ does not cover at
    # all (other domains, general knowledge, chit-chat, uncovered topics of a bank domain).
    kinds = Counter(row[1] for row in rows)
    assert set(kinds) == {"jasper-faq"} | OFF_TOPIC_KINDS, kinds
    near = [row for row in rows if row[1] == "jasper-faq" and float(row[4]) <= 2.5]
    off = [row for row in rows if row[1] in OFF_TOPIC_KINDS]
    assert len(near) == NEAR_MISSES and len(off) == OFF_TOPIC
    assert all(float(row[4]) <= 1.0 for row in off), "an off-topic question scored above 1.0"
    assert all(kinds[kind] >= 20 for kind in OFF_TOPIC_KINDS), kinds
    assert sum(float(row[4]) <= 1.0 for row in rows) >= 100, "fewer than 100 off-topic negatives"
    # The genre is the domain of the FAQ entry in sentence 2 (held-out splits group rows by entry).
    domain = {row[6]: row[0] for row in rows if float(row[4]) >= 4.0}
    assert all(domain[row[6]] == row[0] for row in rows), "a row's genre is not its entry's domain"


def test_bank_entries_shared_by_several_paraphrases_are_one_entry(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(
        "g\tf\ty\t1\t4.8\tHow can I reset my password?\tHow do I reset my password?\n"
        "g\tf\ty\t2\t4.4\tforgot my password\tHow do I reset my password?\n"
        "g\tf\ty\t3\t1.6\tHow do I change my username?\tHow do I reset my password?\n"
        "g\tf\ty\t4\t3.0\tHow do I reset my PIN?\tHow do I reset my password?\n",
        encoding="utf-8",
    )
    bank, questions, expected = sts_calibration_set(pairs)
    assert bank == ["How do I reset my password?"]
    assert questions == ["How can I reset my password?", "forgot my password", "How do I change my username?"]
    assert expected == [0, 0, None]  # the 3.0 pair is ambiguous for an FAQ: left out


def _saved_tiny_model(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    make_tiny_encoder(tmp_path, {"full": 48}).save(folder)
    return folder


def test_calibrate_faq_uses_the_packaged_pairs_by_default(tmp_path: Path, packaged: Path) -> None:
    folder = _saved_tiny_model(tmp_path)
    result = CliRunner().invoke(app, ["calibrate-faq", str(folder)])
    assert result.exit_code == 0, result.output
    stored = json.loads((folder / CONFIG_FILE).read_text())["extra"][FAQ_KEY]
    assert stored["source"] == f"{PACKAGED_PAIRS} (packaged), dim 48"
    assert stored["questions"] == len(sts_calibration_set(packaged)[1])
    assert stored["target_precision"] == 0.8


def test_calibrate_faq_if_missing_keeps_a_stored_threshold(tmp_path: Path) -> None:
    folder = _saved_tiny_model(tmp_path)
    first = CliRunner().invoke(app, ["calibrate-faq", str(folder), "--if-missing"])
    assert first.exit_code == 0, first.output
    stored = (folder / CONFIG_FILE).read_text()
    again = CliRunner().invoke(app, ["calibrate-faq", str(folder), "--if-missing", "--target-precision", "0.5"])
    assert again.exit_code == 0 and "nothing to do" in again.output
    assert (folder / CONFIG_FILE).read_text() == stored


def test_calibrate_faq_help_names_the_default() -> None:
    result = CliRunner().invoke(app, ["calibrate-faq", "--help"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert result.exit_code == 0
    assert PACKAGED_PAIRS in result.output


def test_calibrate_faq_with_a_missing_pairs_file_fails_in_one_line(tmp_path: Path) -> None:
    folder = _saved_tiny_model(tmp_path)
    missing = tmp_path / "nope.tsv"
    before = (folder / CONFIG_FILE).read_text()
    result = CliRunner().invoke(app, ["calibrate-faq", str(folder), "--pairs", str(missing)])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("calibrate-faq failed: ") and str(missing) in lines[0], lines
    assert (folder / CONFIG_FILE).read_text() == before  # nothing stored


# ===================================================================== the FAQ-style development FAQs (faq-dev/)
def test_dev_faqs_are_split_by_faq_into_two_disjoint_halves() -> None:
    from jasper_rag.eval.faq_dev import dev_folder, dev_splits

    splits = dev_splits()
    files = sorted(path.name.removesuffix(".jsonl") for path in dev_folder().iterdir() if path.name.endswith(".jsonl"))
    assert not set(splits["design"]) & set(splits["test"])
    assert sorted(splits["design"] + splits["test"]) == files and len(files) == 6


def test_dev_faqs_have_the_documented_counts_and_paraphrases_in_other_words() -> None:
    from jasper_rag.eval.faq_dev import dev_splits, load_dev_faq
    from jasper_rag.store.lexical_index import terms

    faqs = [load_dev_faq(name) for half in dev_splits().values() for name in half]
    entries = [entry for faq in faqs for entry in faq.entries]
    unrelated = [question for faq in faqs for question in faq.unrelated]
    # jasper_rag/data/README.md and docs/faq-calibration.md quote these counts.
    assert len(entries) == 174 and sum(len(e.paraphrases) for e in entries) == 349 and len(unrelated) == 84
    assert Counter(topic for _, topic in unrelated) == {"in-domain": 48, "off-topic": 36}
    for faq in faqs:
        asked = [q for e in faq.entries for q in (e.question, *e.paraphrases, e.rewording)] + [
            q for q, _ in faq.unrelated
        ]
        assert len(asked) == len(set(asked)), f"{faq.name}: a question appears twice"
        for entry in faq.entries:
            assert 1 <= len(entry.paraphrases) <= 3 and entry.answer
            for paraphrase in entry.paraphrases:  # other words, not a reordering of the stored question
                assert set(terms(paraphrase)) != set(terms(entry.question)), paraphrase
