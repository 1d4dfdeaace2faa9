"""One Settings object, in groups. Environment is read only when Settings() is built.

Each group reads variables named PAPERCHAT_<GROUP>_<FIELD> (e.g. PAPERCHAT_RETRIEVAL_K);
the top level reads PAPERCHAT_<FIELD> (PAPERCHAT_DB_DIR, PAPERCHAT_CHROMA_URL, ...).
The LLM group also honours the standard OPENAI_API_KEY and OPENAI_BASE_URL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

MAX_QUESTION_CHARS = 2000
# Fusion and abstention constants: see the fields below and docs/evaluation.md.
LEXICAL_WEIGHT = 2.0
LEXICAL_GATE = 2.0
LEXICAL_GATE_WIDTH = 1.0
LEXICAL_COVERAGE_POWER = 0.75
PAPER_WEIGHT = 1.0
NAME_WEIGHT = 4.0
SUPPORT_WEIGHTS = (-4.26, 9.96, 5.81, -2.38, -12.57, -12.62)
SEVERAL_MIN_SHARE = 0.2
DENSE_MARGIN_CAP = 0.2
LATE_WEIGHT = 1.0
RERANK_DEPTH = 5


def _group(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=f"PAPERCHAT_{prefix}_", extra="forbid")


class CorpusSettings(BaseSettings):
    model_config = _group("CORPUS")

    search_url_template: str = Field(
        default="https://huggingface.co/papers?q={query}",
        description="Link for a paper whose abstract names no URL: a search for its title "
        "on the papers site. {query} is replaced by the URL-encoded title.",
    )


class IndexSettings(BaseSettings):
    model_config = _group("INDEX")

    chunk_tokens: int = Field(
        default=120,
        ge=32,
        le=240,
        description="Target size of an abstract chunk in model tokens (the model reads 256, "
        "and the title is prepended to every chunk).",
    )
    batch_size: int = Field(
        default=256,
        ge=1,
        description="Chunks embedded per step (bigger batches feed the encoder better).",
    )
    # Chroma's per-call cost is high (on 2 busy cores: 314 records/s in calls of 66, 605/s in
    # calls of 1000), so writes are grouped well above the embedding step.
    write_chunks: int = Field(
        default=1024,
        ge=1,
        description="Chunks written to Chroma per transaction; whole papers only, so an "
        "interrupted ingest keeps every finished group.",
    )
    # Chroma's default of 100 found 97.8 % of the exact 80 nearest chunks of the dev questions
    # (min 91 %) even on the 785 bundled chunks, and which ones it missed changed from build to
    # build; 400 finds 100.0 % (min 98.8 %).
    ef_search: int = Field(
        default=400,
        ge=10,
        description="HNSW search breadth of the chunk collection: higher is closer to exact "
        "nearest neighbours and slower. Applied when the index is created and by each ingest "
        "that writes papers.",
    )
    exact_search_max_chunks: int = Field(
        default=100_000,
        ge=0,
        description="Up to this many chunks, questions search every chunk vector exactly (a "
        "copy beside the BM25 file, about 1.5 KB per chunk in memory) instead of Chroma's "
        "approximate graph; 0 always uses the graph. See rag/chunk_vectors.py for why.",
    )
    collection: str = Field(default="paperchat", description="Chroma collection name prefix.")
    min_free_mb: int = Field(
        default=64,
        ge=0,
        description="An ingest into a local index stops, with a message, before a write that "
        "would leave less than this many MiB free on the index's disk: Chroma can leave its "
        "files unreadable when the disk fills in the middle of a write.",
    )
    refresh_s: float = Field(
        default=30.0,
        ge=0.0,
        le=86400.0,
        description="How often a running chat or API server checks whether another process "
        "(e.g. `paperchat ingest`) changed the index, in seconds; it then reloads without a "
        "restart. One metadata read per check.",
    )


class EmbeddingSettings(BaseSettings):
    model_config = _group("EMBEDDING")

    backend: Literal["onnx-fp32", "onnx", "torch"] = Field(
        default="onnx-fp32",
        description="'onnx-fp32' runs an ONNX copy of the bundled model, made once from its "
        "weights (same vectors as torch, faster, no torch import at start-up); 'onnx' an int8 "
        "copy (faster still, vectors within cosine 0.99: for very large ingests); 'torch' the "
        "sentence-transformers reference. Measured speeds: docs/performance.md.",
    )
    threads: int = Field(
        default=0,
        ge=0,
        description="CPU threads for embedding (an ingest runs one worker process each); "
        "0 = all cores.",
    )
    batch_size: int = Field(default=32, ge=1, description="Texts per forward pass.")
    cache_dir: Path | None = Field(
        default=None,
        description="Where the ONNX copy of the model is made once; defaults to the user cache "
        "directory (~/.cache/paperchat/onnx on Linux).",
    )


class RetrievalSettings(BaseSettings):
    model_config = _group("RETRIEVAL")

    k: int = Field(default=5, ge=1, le=20, description="Papers returned per question.")
    candidates: int = Field(
        default=40, ge=5, le=200, description="Candidates each retriever contributes before fusion."
    )
    # Fitted by scripts/fit_retrieval.py: leave-one-set-out over evals.sets.FITTING_SETS and
    # ACLSum (docs/evaluation.md has the folds). Not tuned to any one set. name_weight is set
    # by a requirement, not fitted (docs/evaluation.md says why).
    lexical_weight: float = Field(
        default=LEXICAL_WEIGHT,
        ge=0.0,
        le=8.0,
        description="Most weight BM25 gets in fusion (relative to the best chunk's 1.0), reached "
        "when one paper's BM25 score stands far above the rest of the corpus.",
    )
    lexical_gate: float = Field(
        default=LEXICAL_GATE,
        description="How far the best BM25 score must stand above the corpus's mean (in "
        "standard deviations, times its paper's coverage of the question: "
        "lexical_coverage_power) for BM25 to get half of lexical_weight; below it the dense "
        "signals decide.",
    )
    lexical_gate_width: float = Field(
        default=LEXICAL_GATE_WIDTH,
        gt=0.0,
        description="Softness of that gate, in standard deviations.",
    )
    lexical_coverage_power: float = Field(
        default=LEXICAL_COVERAGE_POWER,
        ge=0.0,
        le=4.0,
        description="The gate reads BM25's confidence times the idf-weighted share of the "
        "question's terms that BM25's top paper uses, raised to this power (0: the confidence "
        "alone). A corpus that mixes fields inflates the confidence of every question of one "
        "field; a paraphrase's words stay absent from BM25's top paper. Chosen on a corpus "
        "with 10,000 papers of another field (docs/evaluation.md).",
    )
    paper_weight: float = Field(
        default=PAPER_WEIGHT,
        ge=0.0,
        le=2.0,
        description="Weight of the whole-abstract vector relative to the best chunk in fusion.",
    )
    late_weight: float = Field(
        default=LATE_WEIGHT,
        ge=0.0,
        le=16.0,
        description="Weight of late interaction (each question word matched to the paper's "
        "closest word in context, rag.late_interaction) when it reorders the fused ranking's "
        "first rerank_depth papers, relative to their fused score (both standardized over "
        "them); 0 turns it off.",
    )
    rerank_depth: int = Field(
        default=RERANK_DEPTH,
        ge=2,
        le=40,
        description="How many of the fused ranking's first papers late interaction reorders.",
    )
    late_cache_papers: int = Field(
        default=5000,
        ge=0,
        description="Papers whose token vectors late interaction keeps in memory (about 90 KB "
        "each); a paper not kept is encoded again when it reaches the reranked top.",
    )
    name_weight: float = Field(
        default=NAME_WEIGHT,
        ge=0.0,
        le=8.0,
        description="Bonus for a paper whose title carries the names the question uses "
        "(times the share of them it carries).",
    )
    several_min_share: float = Field(
        default=SEVERAL_MIN_SHARE,
        ge=0.0,
        le=1.0,
        description="A paper joins a several-paper answer when its fused score is at least "
        "this share of the way from the last retrieved paper's score to the first's.",
    )
    dense_margin_cap: float = Field(
        default=DENSE_MARGIN_CAP,
        ge=0.0,
        le=2.0,
        description="The support model reads the best chunk's lead over the next nine papers "
        "up to this much: beyond it the lead says that the corpus holds few papers on the "
        "question's topic (a small or mixed collection), not that the question is off-topic. "
        "Chosen on small mixed corpora (docs/evaluation.md).",
    )
    support_weights: tuple[float, float, float, float, float, float] = Field(
        default=SUPPORT_WEIGHTS,
        description="Logistic weights (bias, dense, term coverage, share of the question's names "
        "the top paper lacks, how far the best chunk stands above the next ones, how much "
        "closer the paper comes when the question's words no paper uses are dropped) of the "
        "probability that the top paper answers the question; paperchat abstains below 0.5. "
        "Fitted by scripts/fit_retrieval.py.",
    )


class AnswerSettings(BaseSettings):
    model_config = _group("ANSWER")

    mode: Literal["auto", "extractive", "llm"] = Field(
        default="auto",
        description="'extractive' quotes abstract sentences; 'llm' asks the configured "
        "endpoint; 'auto' uses the LLM when one is configured and reachable.",
    )
    max_question_chars: int = Field(
        default=MAX_QUESTION_CHARS, ge=10, description="Longest question accepted, in characters."
    )
    # max_sentences, fill_words, line_sentences and part_words: fitted by
    # scripts/fit_answer_length.py (docs/fit-answer.json).
    max_sentences: int = Field(
        default=3,
        ge=1,
        le=12,
        description="Most abstract sentences in a one-paper extractive "
        "answer (a sentence beyond the first must answer another part of the question); "
        "several papers get one line each.",
    )
    fill_words: int = Field(
        default=55,
        ge=0,
        le=1000,
        description="A one-paper extractive answer shorter than this many words adds its "
        "next-best sentences while it stays within it (0: never).",
    )
    line_sentences: int = Field(
        default=3,
        ge=1,
        le=12,
        description="Most abstract sentences on each paper's line of a several-paper answer "
        "(a sentence beyond the first must answer another part of the question).",
    )
    part_words: int = Field(
        default=70,
        ge=0,
        le=1000,
        description='A question with several parts ("..., and which datasets ...?") gets the '
        "sentence that best answers each further part while the answer stays within this "
        "many words (0: never).",
    )
    # Fitted by scripts/fit_word_pull.py (docs/evaluation.md).
    missing_word_pull: float = Field(
        default=0.016,
        ge=0,
        le=1,
        description="A question word the cited abstract never uses is listed as missing when "
        "leaving it out brings the question's vector more than this much closer (cosine) to "
        "the abstract's: the detail a near miss insists on (1: never; names and insisted "
        "words are listed either way).",
    )


class LLMSettings(BaseSettings):
    model_config = _group("LLM")

    model: str = Field(default="", description="Chat model name; empty means no LLM configured.")
    api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("PAPERCHAT_LLM_API_KEY", "OPENAI_API_KEY", "api_key"),
        description="API key for the endpoint (OPENAI_API_KEY).",
    )
    base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("PAPERCHAT_LLM_BASE_URL", "OPENAI_BASE_URL", "base_url"),
        description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 (OPENAI_BASE_URL).",
    )
    timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Per-request timeout in seconds: the longest wait for the reply to start, "
        "or for the next piece of a streamed reply.",
    )
    context_tokens: int = Field(
        default=4096,
        ge=512,
        le=10_000_000,
        description="The model's context window in tokens (prompt and answer together). "
        "Sources are shortened to fit: fewer sentences per paper, then fewer papers, and the "
        "answer says so. llama.cpp's server defaults to 2048 (its --n_ctx); Ollama to 2048 "
        "or 4096; hosted models have far more.",
    )
    deadline_s: float = Field(
        default=60.0,
        gt=0,
        description="Longest time for a whole LLM answer, in seconds, however steadily it "
        "streams. At the deadline the answer keeps the text verified so far (or, if nothing "
        "was cited yet, the extractive answer is shown), with a note.",
    )
    max_retries: int = Field(
        default=2, ge=0, le=6, description="Retries on 429/5xx/connection errors, with backoff."
    )
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="Sampling temperature.")

    @property
    def configured(self) -> bool:
        return bool(self.model)


class UISettings(BaseSettings):
    model_config = _group("UI")

    host: str = Field(default="127.0.0.1", description="Interface the web chat binds to.")
    port: int = Field(default=7860, ge=1, le=65535, description="Port of the web chat.")
    concurrency: int = Field(default=8, ge=1, description="Chat requests served at once.")


class ArxivSettings(BaseSettings):
    model_config = _group("ARXIV")

    # arXiv's API terms ask for no more than one request every three seconds.
    delay_s: float = Field(
        default=3.0, ge=0.0, description="Seconds between arXiv API requests (arXiv asks for 3)."
    )
    page_size: int = Field(default=100, ge=1, le=2000, description="Results per arXiv API request.")
    retries: int = Field(
        default=3, ge=0, le=10, description="Retries of a failed arXiv API request."
    )
    max_results: int = Field(
        default=50,
        ge=1,
        le=10000,
        description="Papers an `ingest --arxiv` query fetches unless --max says otherwise.",
    )
    api_url: str = Field(
        default="https://export.arxiv.org/api/query",
        description="The arXiv API's query endpoint (a mirror or a test server may stand in).",
    )


def _default_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("paperchat", appauthor=False))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAPERCHAT_", extra="forbid")

    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Where paperchat keeps its data (index, feedback, eval reports).",
    )
    db_dir: Path | None = Field(
        default=None, description="Index directory; defaults to DATA_DIR/db."
    )
    chroma_url: str | None = Field(
        default=None,
        description="URL of a Chroma server (e.g. http://host:8000); when set, the index "
        "lives there instead of in db_dir.",
    )
    auth: SecretStr | None = Field(
        default=None, description="'user:password' turns on login for the web chat."
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for the OpenAI-compatible API (/v1/*) and the MCP HTTP "
        "endpoint. When this or auth is set, those routes need `Authorization: Bearer TOKEN`, "
        "or the auth credentials (`Bearer user:password` or HTTP Basic).",
    )
    corpus: CorpusSettings = Field(default_factory=CorpusSettings, description="Corpus reading.")
    index: IndexSettings = Field(default_factory=IndexSettings, description="Chunking and storage.")
    embedding: EmbeddingSettings = Field(
        default_factory=EmbeddingSettings, description="The local embedding model."
    )
    retrieval: RetrievalSettings = Field(
        default_factory=RetrievalSettings, description="Hybrid retrieval and abstention."
    )
    answer: AnswerSettings = Field(default_factory=AnswerSettings, description="Answering.")
    llm: LLMSettings = Field(default_factory=LLMSettings, description="Optional LLM endpoint.")
    ui: UISettings = Field(default_factory=UISettings, description="Web chat.")
    arxiv: ArxivSettings = Field(
        default_factory=ArxivSettings, description="Fetching papers from the arXiv API."
    )

    @property
    def resolved_db_dir(self) -> Path:
        return self.db_dir if self.db_dir is not None else self.data_dir / "db"
