"""LangChain's own standard test suites (langchain-tests, pinned in pyproject.toml) on
paperchat's retriever and embeddings, with the real bundled model and index."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_tests.integration_tests import (
    EmbeddingsIntegrationTests,
    RetrieversIntegrationTests,
)

from rag.embeddings import LocalEmbeddings
from rag.errors import InputError
from rag.retriever import PaperRetriever

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

QUESTION = "What NDCG scores did SeqDialN achieve on VisDial v1.0?"


class TestPaperRetrieverStandard(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _use_bundled_index(self, assistant: Any) -> None:
        self.bundled_assistant = assistant

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return PaperRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"assistant": self.bundled_assistant}

    @property
    def retriever_query_example(self) -> str:
        return QUESTION


class TestLocalEmbeddingsStandard(EmbeddingsIntegrationTests):
    @pytest.fixture(autouse=True)
    def _model_cache(self, model_cache: Any) -> None:
        self.cache_dir = model_cache

    @property
    def embeddings_class(self) -> type[LocalEmbeddings]:
        return LocalEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"cache_dir": self.cache_dir}


def test_as_retriever_documents_carry_abstract_and_citation_metadata(assistant: Any) -> None:
    retriever = assistant.as_retriever(k=5)
    assert isinstance(retriever, BaseRetriever)
    docs = retriever.invoke(QUESTION)
    assert len(docs) == 5 and all(isinstance(d, Document) for d in docs)
    top = docs[0]
    assert top.metadata["title"].startswith("SeqDialN")
    paper = assistant.index.papers([top.metadata["paper_id"]])[top.metadata["paper_id"]]
    assert top.page_content == paper.abstract
    assert top.metadata["url"] == paper.url and top.id == paper.id
    assert any("62.54% NDCG" in passage for passage in top.metadata["evidence"])
    scores = [d.metadata["score"] for d in docs]
    assert scores == sorted(scores, reverse=True)
    assert retriever.invoke(QUESTION, k=2) == docs[:2]


def test_retriever_rejects_a_bad_k(assistant: Any) -> None:
    with pytest.raises(InputError, match="k must be"):
        assistant.as_retriever().invoke(QUESTION, k=0)
    with pytest.raises(ValueError):
        assistant.as_retriever(k=50)


def test_retriever_in_an_lcel_chain(assistant: Any) -> None:
    from langchain_core.runnables import RunnableLambda

    def titles_of(docs: list[Document]) -> list[str]:
        return [d.metadata["title"] for d in docs]

    chain = assistant.as_retriever(k=3) | RunnableLambda(titles_of)
    titles = chain.invoke("Which dataset records biological experiments from several camera viewpoints?")
    assert titles[0].startswith("FineBio")
