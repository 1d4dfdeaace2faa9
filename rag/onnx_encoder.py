"""The bundled all-MiniLM-L6-v2 on ONNX Runtime: int8 where it keeps cosine >= 0.99 to torch.

The model is built once from the bundled weights (no download, no torch: rag.onnx_graph writes
the graph), quantised and cached under `user_cache_dir("paperchat")/onnx/<key>`; the key
changes with the weights, onnxruntime, onnx and the recipe below, so a stale model is never
reused.

Recipe, measured on the bundled corpus chunks against the torch reference (see
scripts/bench_embeddings.py):
- Plain export; the ORT transformer optimizer's fused Attention was slower here than what
  the session's own graph optimisations make of the plain graph, so it is not used.
- MatMuls whose input is a hidden state (Q, K, V, attention output, FFN in): dynamic int8,
  weights per channel. These inputs are well behaved.
- The FFN output MatMul reads GELU activations with outlier channels (max ~25 vs median
  ~1.5); a per-tensor activation scale there costs ~0.006 cosine (min 0.989). It gets 8-bit
  block-wise weights with int8 activations quantised per block of 128 (MatMulNBits,
  accuracy_level 4), which is lossless to 1e-4 and still faster than fp32.
- Texts sorted by length and run in batches of <= 512 padded tokens, each padded to its own
  longest text: the activations stay in cache.
- One single-threaded run per core, batches in parallel, rather than one run split across
  cores: no per-operator synchronisation (2 cores: 234 texts/s vs 207 for one 2-thread run).
Result on 2 cores, 785 chunk inputs: 234 texts/s vs 55 for torch fp32 (4.3x), min cosine 0.994.
Without quantisation (`quantize=False`, backend "onnx-fp32") the same export runs at 151
texts/s (2.7x) with vectors equal to torch's (cosine 1.0000): the choice when ranking must
match the reference exactly; int8 moves near-tied papers a rank or two (docs/performance.md).
int8 activations get one scale per batch, so a vector moves slightly (cosine > 0.99) with the
texts it is batched with.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from rag.late_interaction import content_rows
from rag.model_files import MAX_MODEL_TOKENS, bundled_model_path
from rag.word_pull import QuestionVectors, without_each_word

logger = logging.getLogger(__name__)

# Bump a name whenever its export/quantisation below changes.
# v2: the graph is built from the weights by rag.onnx_graph, not exported by torch.
RECIPES = {True: "minilm-int8-v2", False: "minilm-fp32-v2"}  # by `quantize`
# The packages that shape the model file (torch no longer does: see rag.onnx_graph).
_KEY_PACKAGES = ("onnxruntime", "onnx")
MODEL_FILE = "model.onnx"
KEY_MEMO_FILE = "cache-keys.json"  # see remembered_cache_key
_HASHED_FILES = ("model.safetensors", "config.json")
# Padded tokens (texts x width) per forward pass; measured best of 256..2048.
_MAX_BATCH_TOKENS = 512
_BLOCK = 128  # MatMulNBits block along K: divides both 384 and 1536
_build_lock = threading.Lock()


def cache_key(model_dir: Path, quantize: bool = True) -> str:
    digest = hashlib.sha256()
    for name in _HASHED_FILES:
        with open(model_dir / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    for package in _KEY_PACKAGES:
        digest.update(f"{package}={importlib.metadata.version(package)};".encode())
    digest.update(RECIPES[quantize].encode())
    return digest.hexdigest()[:20]


def _package_versions() -> str:
    return ";".join(
        f"{package}={importlib.metadata.version(package)}"
        for package in _KEY_PACKAGES
    )


def remembered_cache_key(model_dir: Path, quantize: bool, root: Path) -> str:
    """cache_key, remembered in `root` by the weight files' size and mtime and the versions.

    Hashing the 87 MB of weights took 0.1-0.2 s of every cold `paperchat ask`. A package
    upgrade that replaces the files changes their mtime, so the memo cannot go stale.
    """
    stats = [(model_dir / name).stat() for name in _HASHED_FILES]
    stamp = "|".join(
        [str(model_dir), *(f"{st.st_size}:{st.st_mtime_ns}" for st in stats),
         _package_versions(), RECIPES[quantize]]
    )  # fmt: skip
    memo_path = root / KEY_MEMO_FILE
    try:
        memo = json.loads(memo_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        memo = {}
    if isinstance(memo, dict) and isinstance(memo.get(stamp), str):
        return str(memo[stamp])
    key = cache_key(model_dir, quantize)
    memo = memo if isinstance(memo, dict) else {}
    with contextlib.suppress(OSError):  # a read-only cache only costs the hash next time
        root.mkdir(parents=True, exist_ok=True)
        tmp = memo_path.with_name(f".{memo_path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**memo, stamp: key}), encoding="utf-8")
        os.replace(tmp, memo_path)
    return key


def default_cache_root() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("paperchat")) / "onnx"


def _export_fp32(model_dir: Path, out: Path) -> None:
    """BertModel -> ONNX, last_hidden_state only, dynamic batch and length (no torch)."""
    from rag.onnx_graph import build_bert_graph

    build_bert_graph(model_dir, out)


def _weight_matmuls(model: Any) -> dict[str, np.ndarray]:
    """Node name -> 2-D constant weight of every MatMul that has one."""
    from onnx import numpy_helper

    weights = {init.name: init for init in model.graph.initializer}
    found = {}
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.input[1] in weights:
            array = numpy_helper.to_array(weights[node.input[1]])
            if array.ndim == 2:
                found[node.name] = array
    return found


def _blockwise_int8(model: Any, node_names: set[str]) -> None:
    """Replace these MatMuls by MatMulNBits (8-bit, symmetric, per block of K) in place."""
    from onnx import helper, numpy_helper

    weights = {init.name: init for init in model.graph.initializer}
    nodes = []
    for node in model.graph.node:
        if node.name not in node_names:
            nodes.append(node)
            continue
        w = numpy_helper.to_array(weights[node.input[1]]).astype(np.float32)  # (K, N)
        k, n = w.shape
        blocks = w.T.reshape(n, k // _BLOCK, _BLOCK)
        scale = np.abs(blocks).max(axis=-1) / 127.0
        scale[scale == 0] = 1.0
        # Without zero points MatMulNBits assumes 128 for 8 bits: store q + 128 as uint8.
        q = (np.clip(np.rint(blocks / scale[..., None]), -127, 127) + 128).astype(np.uint8)
        q_name, s_name = f"{node.input[1]}_q8", f"{node.input[1]}_scale"
        model.graph.initializer.extend(
            [
                numpy_helper.from_array(q, q_name),
                numpy_helper.from_array(scale.reshape(-1).astype(np.float32), s_name),
            ]
        )
        nodes.append(
            helper.make_node(
                "MatMulNBits",
                [node.input[0], q_name, s_name],
                list(node.output),
                name=f"{node.name}_q8",
                domain="com.microsoft",
                K=k,
                N=n,
                bits=8,
                block_size=_BLOCK,
                accuracy_level=4,
            )
        )
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    used = {name for node in model.graph.node for name in node.input}
    kept = [init for init in model.graph.initializer if init.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    if not any(op.domain == "com.microsoft" for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))


class _DropHint(logging.Filter):
    """The quantizer tells the root logger to pre-process the model; measured, not needed."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()


def build_model(model_dir: Path, target: Path, quantize: bool = True) -> None:
    """Export, quantise (unless not asked to) and atomically write the model to `target`."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    started = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    # Work inside the target's folder so the final os.replace stays on one file system.
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    hint = _DropHint()
    try:
        fp32, dynamic = work / "fp32.onnx", work / "dynamic.onnx"
        _export_fp32(model_dir, fp32)
        if not quantize:
            os.replace(fp32, target)
            return
        hidden = _hidden_size(model_dir)
        weights = _weight_matmuls(onnx.load(str(fp32)))
        logging.getLogger().addFilter(hint)
        quantize_dynamic(
            fp32,
            dynamic,
            op_types_to_quantize=["MatMul"],
            # Weights that read the hidden state (K == 384); the FFN output (K == 1536) below.
            nodes_to_quantize=[name for name, w in weights.items() if w.shape[0] == hidden],
            per_channel=True,
            weight_type=QuantType.QInt8,
            # Shape inference leaves some MatMul outputs untyped; every tensor here is float.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        model = onnx.load(str(dynamic))
        _blockwise_int8(model, {name for name, w in weights.items() if w.shape[0] != hidden})
        partial = work / MODEL_FILE
        onnx.save(model, str(partial))
        os.replace(partial, target)
    finally:
        logging.getLogger().removeFilter(hint)
        shutil.rmtree(work, ignore_errors=True)
    logger.info("built %s in %.1fs", target, time.perf_counter() - started)


def _hidden_size(model_dir: Path) -> int:
    return int(json.loads((model_dir / "config.json").read_text())["hidden_size"])


def ensure_model(cache_dir: Path | str | None, quantize: bool) -> Path:
    """The cached ONNX model file, built first if missing (once per process at a time)."""
    model_dir = bundled_model_path()
    root = Path(cache_dir) if cache_dir is not None else default_cache_root()
    path = root / remembered_cache_key(model_dir, quantize, root) / MODEL_FILE
    with _build_lock:
        if not path.exists():
            # Shown on stderr even with logging unconfigured (Python's last-resort handler
            # prints warnings): the first ingest would otherwise sit at 0 % for a while.
            logger.warning(
                "paperchat: preparing the embedding model, once: an ONNX copy of the "
                "bundled weights in %s (a few seconds)",
                path.parent,
            )
            build_model(model_dir, path, quantize)
    return path


class OnnxEncoder:
    """Same contract as TorchEncoder; `encode` may be called from several threads at once."""

    def __init__(
        self, threads: int = 0, cache_dir: Path | str | None = None, quantize: bool = True
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model_dir = bundled_model_path()
        self.model_path = ensure_model(cache_dir, quantize)
        self.dim = _hidden_size(model_dir)
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # The shipped tokenizer pads and truncates to 128; we pad per batch and the model
        # (like sentence-transformers' max_seq_length) reads up to 256 tokens.
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(MAX_MODEL_TOKENS)

        self._pool = ThreadPoolExecutor(threads or os.cpu_count() or 1, thread_name_prefix="onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # parallel across batches instead (see above)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # ORT's warnings go to stderr unasked
        # Spinning workers wait for work by burning a core: no gain on an idle machine, and
        # on a loaded one (ingest beside Chroma, the UI, ...) 91 texts/s instead of 128.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            str(self.model_path), options, providers=["CPUExecutionProvider"]
        )

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        """L2-normalised mean-pooled vectors, (len(texts), 384) float32, in input order."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for batch, ids, hidden in self._hidden_states(texts, batch_size):
            out[batch] = _pooled(hidden, _mask(ids))
        return out

    def encode_tokens(self, texts: list[str], batch_size: int) -> list[np.ndarray]:
        """Each text's content-token vectors (rag.late_interaction.content_rows)."""
        out: list[np.ndarray] = [np.zeros((0, self.dim), dtype=np.float32)] * len(texts)
        for batch, ids, hidden in self._hidden_states(texts, batch_size):
            for row, (i, text_ids) in enumerate(zip(batch, ids, strict=True)):
                out[i] = content_rows(text_ids, hidden[row, : len(text_ids)])
        return out

    def _hidden_states(
        self, texts: list[str], batch_size: int
    ) -> Iterator[tuple[list[int], list[list[int]], np.ndarray]]:
        """(indices into `texts`, their token ids, their last hidden state) per batch."""
        if not texts:
            return
        ids = [encoding.ids for encoding in self._tokenizer.encode_batch(texts)]
        batches = _batches([len(i) for i in ids], batch_size)
        # InferenceSession.run is thread-safe and releases the GIL.
        run = self._pool.map if len(batches) > 1 else map
        results = run(lambda batch: self._hidden([ids[i] for i in batch]), batches)
        for batch, hidden in zip(batches, results, strict=True):
            yield batch, [ids[i] for i in batch], hidden

    def encode_with_tokens(self, text: str) -> QuestionVectors:
        """One text's vector (as `encode`), content-token vectors and vector without each
        word (rag.word_pull), from one model pass."""
        encoding = self._tokenizer.encode(text)
        ids = encoding.ids
        hidden = self._hidden([ids])
        return QuestionVectors(
            _pooled(hidden, _mask([ids]))[0],
            content_rows(ids, hidden[0]),
            without_each_word(text, encoding.offsets, hidden[0]),
        )

    def _hidden(self, ids: list[list[int]]) -> np.ndarray:
        """The model's last hidden state, (texts, longest, 384), padded with id 0."""
        mask = _mask(ids)
        input_ids = np.zeros_like(mask)
        for r, row in enumerate(ids):
            input_ids[r, : len(row)] = row
        (hidden,) = self._session.run(
            None,
            {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(mask)},
        )
        return np.asarray(hidden)


def _pooled(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over each text's tokens, L2-normalised (sentence-transformers' pooling)."""
    weights = mask[..., None].astype(np.float32)
    pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def _mask(ids: list[list[int]]) -> np.ndarray:
    mask = np.zeros((len(ids), max(len(row) for row in ids)), dtype=np.int64)
    for r, row in enumerate(ids):
        mask[r, : len(row)] = 1
    return mask


def _batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices longest first, cut at `batch_size` texts or _MAX_BATCH_TOKENS padded tokens."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # Longest first, so current[0] sets the padded width of the batch.
        width = lengths[current[0]] if current else lengths[i]
        if current and (
            len(current) >= batch_size or (len(current) + 1) * width > _MAX_BATCH_TOKENS
        ):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches
