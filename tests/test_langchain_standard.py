"""LangChain's own standard tests (``langchain-tests``) against ``JasperEmbeddings`` and ``JasperRetriever``.

Real objects over a tiny random encoder and a five-file store: offline, a few seconds. The async
standard tests run on anyio's pytest plugin (asyncio backend), so they need neither pytest-asyncio
nor an ``asyncio_mode`` setting (and run the same where pytest-asyncio is installed, in strict mode).
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from jasper_rag.config import Settings
from jasper_rag.ingest.pipeline import ingest_paths
from jasper_rag.search import Searcher
from jasper_rag.search.langchain import JasperEmbeddings, JasperRetriever
from jasper_rag.store import Store
from tests.conftest import make_tiny_encoder

with warnings.catch_warnings():
    # the package imports its chat-model suites, marked for pytest-benchmark / pytest-recording
    warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
    from langchain_tests.integration_tests import EmbeddingsIntegrationTests, RetrieversIntegrationTests

pytestmark = pytest.mark.anyio

DOCS = {
    "cats.txt": "the cat sat on the mat",
    "dogs.txt": "the dog is fast on the road",
    "paris.md": "paris is the capital of france",
    "cells.txt": "protein cells and cancer risk",
    "fruit.txt": "apple and banana fruit",
}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """The async standard tests on asyncio only (the searcher runs in asyncio's executor)."""
    return "asyncio"


@pytest.fixture(scope="module")
def standard_searcher(tmp_path_factory, one_torch_thread) -> Searcher:
    root = tmp_path_factory.mktemp("langchain-standard")
    folder = root / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text)
    encoder = make_tiny_encoder(root, {"full": 48, "d16": 16, "d8": 8})
    settings = Settings(indexes_dir=root / "idx")
    store = Store.open(settings)
    assert ingest_paths([folder], encoder, store, settings, progress=False).exit_code == 0
    return Searcher(store, encoder)


class TestJasperEmbeddingsStandard(EmbeddingsIntegrationTests):
    @pytest.fixture(autouse=True, scope="class")
    def _objects(self, request, standard_searcher) -> None:
        request.cls.encoder = standard_searcher.encoder

    @property
    def embeddings_class(self) -> type[JasperEmbeddings]:
        return JasperEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"encoder": self.encoder, "dim": 16}


class TestJasperRetrieverStandard(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True, scope="class")
    def _objects(self, request, standard_searcher) -> None:
        request.cls.searcher = standard_searcher

    @property
    def retriever_constructor(self) -> type[JasperRetriever]:
        return JasperRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"searcher": self.searcher, "k": 2, "kinds": ["chunk"]}

    @property
    def retriever_query_example(self) -> str:
        return "the cat sat on the mat"
