"""The names of the configurations an eval run compares (their code: evals.baselines).

Kept apart so `paperchat --help` and the eval parser name them without importing models.
"""

BASELINES = ("bm25", "dense", "langchain_basic")
CONFIG_NOTES = {
    "default": "paperchat as shipped: Assistant.ask (hybrid retrieval, history, abstention)",
    "bm25": "BM25 only (HybridRetriever mode=lexical) + the extractive answer over its hits",
    "dense": "dense only (HybridRetriever mode=dense) + the extractive answer over its hits",
    "langchain_basic": "RecursiveCharacterTextSplitter(1000/200) chunks of abstracts in Chroma, "
    "similarity_search k=4, no fusion, no history; answer = the retrieved chunks",
}
