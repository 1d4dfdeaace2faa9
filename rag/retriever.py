"""paperchat's hybrid retrieval as a LangChain retriever, for use in any LangChain chain or agent.

    retriever = assistant.as_retriever(k=5)
    docs = retriever.invoke("Which papers study video moment retrieval?")
    docs = retriever.invoke("...", k=2)          # per call

Each Document is one paper: page_content is its abstract; metadata holds title, url,
paper_id, score (the fused retrieval score, higher is better), evidence (the abstract
passages that matched the query, best first) and source (the corpus file). Retrieval is exactly what
`paperchat ask` uses, follow-up handling aside: a retriever sees one query string.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from rag.errors import InputError
from rag.types import Hit

MAX_K = 20


class PaperRetriever(BaseRetriever):
    """Papers for a query from a paperchat Assistant (see rag.pipeline.Assistant.as_retriever)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    assistant: Any = Field(description="The rag.pipeline.Assistant whose index is searched.")
    k: int = Field(default=5, ge=1, le=MAX_K, description="Papers returned per query.")

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        k = self.k if k is None else k
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise InputError(f"k must be a whole number from 1 to {MAX_K}; got {k!r}.")
        retrieval = self.assistant.retrieve(query, (), k)
        return [paper_document(hit) for hit in retrieval.hits[:k]]


def paper_document(hit: Hit) -> Document:
    paper = hit.paper
    return Document(
        id=paper.id,
        page_content=paper.abstract,
        metadata={
            "paper_id": paper.id,
            "title": paper.title,
            "url": paper.url,
            "score": round(float(hit.score), 4),
            "evidence": list(hit.evidence),
            "source": paper.source,
        },
    )
