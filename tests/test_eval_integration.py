"""The harness reproduces all-MiniLM-L6-v2's published MTEB scores (real weights, shared eval data).

Uses the on-disk vector cache when present (the SciFact corpus takes a few minutes to embed on CPU).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from jasper_rag.config import get_settings
from jasper_rag.eval.tasks import STS_BENCHMARK_FILE, RetrievalTask, STSTask
from jasper_rag.teachers import SentenceTransformerTeacher
from jasper_rag.vector_cache import CachedEncoder

pytestmark = pytest.mark.integration

PUBLISHED = {"scifact_ndcg_at_10": 64.51, "stsbenchmark_spearman": 82.03}  # MTEB leaderboard, all-MiniLM-L6-v2
TOLERANCE = 0.3


@pytest.fixture(scope="module")
def minilm() -> CachedEncoder:
    return CachedEncoder(SentenceTransformerTeacher("minilm-l6"), get_settings().cache_dir / "vectors")


def test_scifact_ndcg_matches_mteb(minilm: CachedEncoder, eval_dir: Path) -> None:
    scores = RetrievalTask.from_folder(eval_dir / "scifact").evaluate(minilm)
    assert scores["ndcg_at_10"] == pytest.approx(PUBLISHED["scifact_ndcg_at_10"], abs=TOLERANCE)


def test_stsbenchmark_spearman_matches_mteb(minilm: CachedEncoder, eval_dir: Path) -> None:
    scores = STSTask.from_file(eval_dir / STS_BENCHMARK_FILE).evaluate(minilm)
    assert scores["spearman"] == pytest.approx(PUBLISHED["stsbenchmark_spearman"], abs=TOLERANCE)
