"""Vector search over sentence embeddings: an exact in-process index (numpy) kept fresh from
MongoDB, and the OpenSearch k-NN capability check and query for servers that have it."""

from app.vectors.index import DIM, REQUIRED_INDEXES, VectorIndex, changes_filter, classification_rank
from app.vectors.knn import clear_knn_cache, cosine_from_score, knn_field, knn_query, knn_supported
from app.vectors.registry import clear_registry, get_index

__all__ = ["DIM", "REQUIRED_INDEXES", "VectorIndex", "changes_filter", "classification_rank",
           "clear_knn_cache", "cosine_from_score", "knn_field", "knn_query", "knn_supported", "clear_registry", "get_index"]
