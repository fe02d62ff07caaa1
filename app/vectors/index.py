"""An in-process exact vector index (numpy) over the sentence embeddings stored on MongoDB documents.

Rows are documents. Vectors live in one float32 matrix that grows by doubling (an add never
copies the matrix, only a growth does, O(log n) times in all); removed rows are flagged deleted
and their slots reused. Per-row metadata sits in parallel arrays, so a filter is a few vectorised
comparisons, never a Python loop over rows:

    rank      int8   data_classification rank (PUBLIC 0 … RESTRICTED 3; unknown values count as RESTRICTED)
    namespace int32  code of the namespace string   (codes are per index, assigned on first sight)
    status    int32  code of the status string
    category  int32  code of the category string
    deleted   bool   a free slot

Search is exact: cosine = dot product (rows and the query are L2-normalised), one float32
matrix-vector product (numpy einsum), masked, top-k by `argpartition`; the few rows at or near the k-th score are
scored again in float64 by a position-independent kernel, and equal scores are ordered by id, so a
result never depends on insertion order or on which physical row a document occupies.

Memory per 100k vectors (384-d): the matrix is 100_000 * 384 * 4 = 153.6 MB; metadata 14 bytes a
row = 1.4 MB; ids (a str, a list slot, a dict entry) about 150-200 bytes a row = 15-20 MB.
About 175 MB in all. Capacity is a power of two (131_072 rows for 100k): the unused tail of the
matrix is allocated but pages never written stay unresident on Linux; during a growth the old and
new matrices coexist briefly.

Freshness from MongoDB (`refresh`): see the method. The indexes it needs on the collection are
`REQUIRED_INDEXES`.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

import numpy as np
from pymongo import ASCENDING, IndexModel

from app.users.models import CLASSIFICATION_ORDER

log = logging.getLogger(__name__)

DIM = 384
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_RANKS = {c.value: i for i, c in enumerate(CLASSIFICATION_ORDER)}
_MAX_RANK = len(CLASSIFICATION_ORDER) - 1
_DEFAULT_CLASSIFICATION = "INTERNAL"
# Bound on the float32 error of a 384-d unit dot product (384 * 2**-24 ≈ 2.3e-5), twice, rounded up:
# any row of the exact top k scores at least (k-th float32 score - this) in float32.
_F32_SLACK = 1e-4

# What refresh needs on the collection (app/db.py owns index creation). The second one also makes
# the id reconciliation a covered query (index only, no document fetch).
REQUIRED_INDEXES = [
    IndexModel([("updated_at", ASCENDING)]),
    IndexModel([("embedded_at", ASCENDING), ("_id", ASCENDING)]),
]

PROJECTION = {"_id": 1, "embedding": 1, "embedding_model": 1, "data_classification": 1, "namespace": 1,
              "status": 1, "category": 1}

# Private equivalents of app.embeddings.from_bytes/to_bytes (kept here so that this module does
# not depend on the model code; the stored format is the same: float32 little-endian, DIM*4 bytes).
def _from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4")


def _to_bytes(vector: Any) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


# Every document an embedding was written for (the worker stamps `embedded_at` with each, app/embeddings/store.py),
# read from the (embedded_at, _id) index. `{"embedding": {"$exists": true}}`, which no index serves, scanned the
# whole collection: at a million incidents not embedded yet (an import, a backfill) one batch ran past the API's
# 2.5 s deadline and the index never loaded.
EMBEDDED = {"embedded_at": {"$gte": EPOCH}}


def changes_filter(since: datetime) -> dict[str, Any]:
    """Documents changed (fields or embedding) at or after `since`: one query, each branch on its index."""
    return {"$or": [{"updated_at": {"$gte": since}}, {"embedded_at": {"$gte": since}}]}


def classification_rank(value: str | None) -> int:
    return _RANKS.get(value or _DEFAULT_CLASSIFICATION, _MAX_RANK)


class VectorIndex:
    """Exact cosine top-k over one collection's embeddings, with metadata filters.

    Not thread-safe: use it from one event loop (search is synchronous; refresh awaits MongoDB, and
    a full reload builds aside and swaps in one step, so searches meanwhile see the old rows)."""

    def __init__(self, collection: str = "incidents", *, dim: int = DIM, model: str | None = None,
                 capacity: int = 1024, lag_seconds: float = 30.0, reconcile_every: int = 30,
                 full_every: int = 720) -> None:
        self.collection = collection
        self.dim = dim
        self.model = model                  # only embeddings of this model are held (None: any)
        self.lag = timedelta(seconds=lag_seconds)  # re-read window for late commits and clock skew
        self.reconcile_every = reconcile_every     # id reconciliation (deletions) every N refreshes
        self.full_every = full_every               # full reload every N refreshes (0: never)
        self.refreshes = 0
        self.queries = 0                    # MongoDB queries issued by refresh (find/getMore rounds excluded)
        self.last_refresh: dict[str, Any] = {}
        self._watermark: datetime | None = None    # None: the next refresh is a full load
        self._reset(capacity)

    # --- storage ---------------------------------------------------------------------------------

    def _reset(self, capacity: int) -> None:
        capacity = max(1, capacity)
        self._n = 0
        self._vecs = np.zeros((capacity, self.dim), dtype=np.float32)
        self._rank = np.zeros(capacity, dtype=np.int8)
        self._ns = np.zeros(capacity, dtype=np.int32)
        self._status = np.zeros(capacity, dtype=np.int32)
        self._cat = np.zeros(capacity, dtype=np.int32)
        self._deleted = np.ones(capacity, dtype=bool)
        self._ids: list[str | None] = []
        self._row: dict[str, int] = {}
        self._free: list[int] = []
        self._codes: dict[str, dict[Any, int]] = {"namespace": {}, "status": {}, "category": {}}

    _STATE = ("_n", "_vecs", "_rank", "_ns", "_status", "_cat", "_deleted", "_ids", "_row", "_free", "_codes")

    def _adopt(self, other: "VectorIndex") -> None:
        for name in self._STATE:
            setattr(self, name, getattr(other, name))

    @property
    def capacity(self) -> int:
        return self._vecs.shape[0]

    def _grow(self, needed: int) -> None:
        cap = self.capacity
        while cap < needed:
            cap *= 2
        n = self._n
        vecs = np.zeros((cap, self.dim), dtype=np.float32)
        vecs[:n] = self._vecs[:n]
        self._vecs = vecs
        for name, dtype in (("_rank", np.int8), ("_ns", np.int32), ("_status", np.int32), ("_cat", np.int32)):
            arr = np.zeros(cap, dtype=dtype)
            arr[:n] = getattr(self, name)[:n]
            setattr(self, name, arr)
        deleted = np.ones(cap, dtype=bool)
        deleted[:n] = self._deleted[:n]
        self._deleted = deleted

    def _code(self, kind: str, value: Any) -> int:
        codes = self._codes[kind]
        code = codes.get(value)
        if code is None:
            code = codes[value] = len(codes)
        return code

    def nbytes(self) -> int:
        """Bytes held by the arrays (allocated capacity; ids and dicts not included)."""
        return sum(a.nbytes for a in (self._vecs, self._rank, self._ns, self._status, self._cat, self._deleted))

    def __len__(self) -> int:
        return len(self._row)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._row

    def ids(self) -> list[str]:
        return list(self._row)

    def vector(self, doc_id: str) -> np.ndarray | None:
        row = self._row.get(doc_id)
        return None if row is None else self._vecs[row].copy()

    def _normalised(self, vector: Any) -> np.ndarray:
        v = np.asarray(vector, dtype=np.float32).reshape(-1)
        if v.shape[0] != self.dim:
            raise ValueError(f"expected a {self.dim}-d vector, got {v.shape[0]}")
        norm = float(np.linalg.norm(v))
        if not np.isfinite(norm) or norm == 0.0:
            raise ValueError("a vector must be finite and non-zero")
        return v if abs(norm - 1.0) < 1e-6 else v / norm

    def upsert(self, doc_id: str, vector: Any, *, classification: str | None = None, namespace: str | None = None,
               status: str | None = None, category: str | None = None) -> None:
        """Add or replace one row. The vector is normalised if it is not already."""
        v = self._normalised(vector)
        row = self._row.get(doc_id)
        if row is None:
            if self._free:
                row = self._free.pop()
                self._ids[row] = doc_id
            else:
                row = self._n
                if row >= self.capacity:
                    self._grow(row + 1)
                self._n += 1
                self._ids.append(doc_id)
            self._row[doc_id] = row
        self._vecs[row] = v
        self._rank[row] = classification_rank(classification)
        self._ns[row] = self._code("namespace", namespace)
        self._status[row] = self._code("status", status)
        self._cat[row] = self._code("category", category)
        self._deleted[row] = False

    def remove(self, doc_id: str) -> bool:
        row = self._row.pop(doc_id, None)
        if row is None:
            return False
        self._deleted[row] = True
        self._ids[row] = None
        self._free.append(row)
        return True

    # --- search ----------------------------------------------------------------------------------

    def search(self, query: np.ndarray, k: int, *, max_rank: int, namespace: str | None = None,
               exclude_ids: Iterable[str] = (), statuses: Iterable[str] | None = None,
               categories: Iterable[str] | None = None) -> list[tuple[str, float]]:
        """The k rows most like `query` (cosine, best first; equal scores by id) among those not
        deleted, with classification rank <= `max_rank`, in `namespace` (when given), with a status
        in `statuses` / category in `categories` (when given), and not in `exclude_ids`."""
        n = self._n
        if k <= 0 or not self._row:
            return []
        q = self._normalised(query)
        mask = ~self._deleted[:n]
        mask &= self._rank[:n] <= max_rank
        if namespace is not None:
            code = self._codes["namespace"].get(namespace)
            if code is None:
                return []
            mask &= self._ns[:n] == code
        for values, kind, arr in ((statuses, "status", self._status), (categories, "category", self._cat)):
            if values is None:
                continue
            if isinstance(values, str):
                values = [values]
            codes = [c for c in (self._codes[kind].get(v) for v in values) if c is not None]
            if not codes:
                return []
            mask &= (arr[:n] == codes[0]) if len(codes) == 1 else np.isin(arr[:n], codes)
        if isinstance(exclude_ids, str):
            exclude_ids = [exclude_ids]
        rows = [r for r in (self._row.get(i) for i in exclude_ids) if r is not None]
        if rows:
            mask[rows] = False
        cand = np.flatnonzero(mask)
        if cand.size == 0:
            return []
        # einsum, not BLAS `@`: single-threaded and memory-bound either way, it measured faster
        # than OpenBLAS's threaded sgemv on 2 busy cores (9 vs 17 ms at 100k rows).
        if cand.size * 5 < n:   # selective: score only the candidates
            scores = np.einsum("ij,j->i", self._vecs[cand], q)
        else:                   # the full product is cheaper than a large gather
            scores = np.einsum("ij,j->i", self._vecs[:n], q)[cand]
        if cand.size > k:
            top = np.argpartition(scores, cand.size - k)[cand.size - k:]
            kth = scores[top].min()
            # float32 rounding may depend on a row's position (BLAS blocks rows; SIMD kernels), so
            # equal vectors could differ in the last bit: keep every row near the boundary and score
            # those again in float64, one row at a time by the same kernel.
            top = np.flatnonzero(scores >= kth - _F32_SLACK)
        else:
            top = np.arange(cand.size)
        rows = cand[top]
        exact = np.einsum("ij,j->i", self._vecs[rows].astype(np.float64), q.astype(np.float64))
        ids = self._ids
        hits = sorted(zip((-exact).tolist(), (ids[r] for r in rows.tolist())))
        return [(doc_id, -neg) for neg, doc_id in hits[:k]]

    # --- MongoDB ---------------------------------------------------------------------------------

    def set_model(self, model: str | None) -> None:
        """Hold another model's embeddings from now on: the next refresh is a full reload."""
        if model != self.model:
            self.model = model
            self._watermark = None

    @property
    def loaded(self) -> bool:
        return self._watermark is not None

    def _apply(self, doc: dict) -> str:
        doc_id = str(doc["_id"])
        emb = doc.get("embedding")
        if emb is None or (self.model is not None and doc.get("embedding_model") != self.model) \
                or len(emb) != self.dim * 4:
            return "removed" if self.remove(doc_id) else "skipped"
        try:
            self.upsert(doc_id, _from_bytes(bytes(emb)), classification=doc.get("data_classification"),
                        namespace=doc.get("namespace"), status=doc.get("status"), category=doc.get("category"))
        except ValueError:  # a zero or non-finite vector
            return "removed" if self.remove(doc_id) else "skipped"
        return "upserted"

    async def refresh(self, bk: Any, *, full: bool = False) -> dict[str, Any]:
        """Bring the rows up to date with MongoDB; returns what it did (also in `last_refresh`).

        - First call, after `set_model`, every `full_every` refreshes, or `full=True`: a full load,
          built aside and swapped in at the end. It reads the embedded documents only (`EMBEDDED`, from the
          (embedded_at, _id) index), so documents not embedded yet are never scanned.
        - Otherwise one query, `changes_filter(watermark)`: documents whose `updated_at` or
          `embedded_at` is at or after the watermark (the worker writes embeddings without touching
          `updated_at`). Each is upserted, or removed when it has no embedding (or one of another
          model). The next watermark is this refresh's start minus `lag_seconds`, so a write stamped
          just before a refresh but committed after it (or stamped by a slightly slow clock) is read
          next time; documents changed within the lag are simply read again.
        - Every `reconcile_every` refreshes, deletions: the ids of all embedded documents (a covered
          query on (embedded_at, _id)); rows for ids no longer there are removed.
        """
        coll = bk.mongo[self.collection]
        started = datetime.now(timezone.utc)
        t0 = time.perf_counter()
        self.refreshes += 1
        stats: dict[str, Any] = {"upserted": 0, "removed": 0, "skipped": 0, "queries": 0}
        if full or self._watermark is None or (self.full_every and self.refreshes % self.full_every == 0):
            stats["kind"] = "full"
            fresh = VectorIndex(self.collection, dim=self.dim, model=self.model,
                                capacity=max(1024, len(self._row)))
            stats["queries"] += 1
            async for doc in coll.find(EMBEDDED, PROJECTION, batch_size=2000):
                stats[fresh._apply(doc)] += 1
            self._adopt(fresh)
        else:
            stats["kind"] = "incremental"
            stats["queries"] += 1
            async for doc in coll.find(changes_filter(self._watermark), PROJECTION, batch_size=1000):
                stats[self._apply(doc)] += 1
            if self.reconcile_every and self.refreshes % self.reconcile_every == 0:
                stats["queries"] += 1
                stats["removed"] += await self._reconcile(coll)
        mark = started - self.lag  # BSON dates keep milliseconds: floor, so nothing stamped after is missed
        self._watermark = mark.replace(microsecond=mark.microsecond // 1000 * 1000)
        self.queries += stats["queries"]
        stats["rows"] = len(self._row)
        stats["seconds"] = time.perf_counter() - t0
        self.last_refresh = stats
        return stats

    async def _reconcile(self, coll: Any) -> int:
        """Remove rows whose document is gone (or no longer embedded); returns how many."""
        present = set()
        async for doc in coll.find(EMBEDDED, {"_id": 1}, batch_size=10000):
            present.add(str(doc["_id"]))
        gone = [i for i in self._row if i not in present]
        for doc_id in gone:
            self.remove(doc_id)
        return len(gone)
