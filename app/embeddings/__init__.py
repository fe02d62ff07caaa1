"""Text embeddings (all-MiniLM-L6-v2, 384 dimensions) computed in-process with numpy; no torch, no
download. See model.py for how and where the weights are found.

    from app import embeddings
    vecs = embeddings.embed(["database connection pool exhausted", ...])   # (n, 384) float32, unit rows
    blob = embeddings.to_bytes(vecs[0]); vec = embeddings.from_bytes(blob)  # 1536 bytes for MongoDB

Store MODEL_VERSION next to stored vectors: vectors with another version must be recomputed.
"""

from app.embeddings.model import (
    DIM,
    INSTALL_COMMAND,
    MAX_TOKENS,
    MODEL_NAME,
    MODEL_VERSION,
    EmbeddingsUnavailable,
    available,
    embed,
    from_bytes,
    load,
    model_dir,
    to_bytes,
)

__all__ = ["DIM", "INSTALL_COMMAND", "MAX_TOKENS", "MODEL_NAME", "MODEL_VERSION", "EmbeddingsUnavailable",
           "available", "embed", "from_bytes", "load", "model_dir", "to_bytes"]
