"""The similar-incident ranking is the documented fusion, and the same stored data gives the same ranked
list: on every request, whatever order incidents were written in, and after the search index is rebuilt
from MongoDB in bulk (a different write order). Ties break by the incident's name (then id), a key taken
from the data, never by creation order or a random id."""

from __future__ import annotations

import itertools

from app.incidents import similarity
from app.indexing import outbox
from app.users.models import Classification, Role, User
from indexers import incidents as incidents_index
from indexers.base import reindex
from tests.conftest import unique

BASE = "/api/v1/incidents/"
READER = User(id="sim-reader", username="sim-reader", role=Role.ADMIN, clearance=Classification.RESTRICTED)


def test_fuse_is_the_documented_formula():
    a = {"affected_services": ["billing", "kafka"], "category": "Infrastructure", "namespace": "ops",
         "severity": "HIGH", "timeline": [{"type": "Detection"}]}
    b = {"_id": "b", "affected_services": ["kafka"], "category": "Infrastructure", "namespace": "ops",
         "severity": "LOW", "timeline": [{"type": "Detection"}, {"type": "Mitigation"}]}
    struct = 0.4 * 0.5 + 0.25 + 0.15 + 0.1 * 0.5  # services 1/2, category, namespace, event types 1/2
    m = similarity.fuse(a, b, text=0.6, semantic=0.5)
    assert m.score == round(0.45 * 0.6 + 0.35 * 0.5 + 0.20 * struct, 4)
    # no vector (model not installed): the semantic weight moves to text, nothing else changes
    m = similarity.fuse(a, b, text=0.6, semantic=None)
    assert m.score == round(0.80 * 0.6 + 0.20 * struct, 4)
    assert [f["factor"] for f in m.factors][:1] == ["text"] and "semantic" not in {f["factor"] for f in m.factors}


def test_equal_scores_are_ordered_by_name_then_id_whatever_the_input_order():
    matches = [similarity.Match(doc={"_id": i, "name": n}, score=s)
               for i, n, s in [("id-9", "INC-B", 0.7), ("id-1", "INC-C", 0.7), ("id-5", "INC-A", 0.7),
                               ("id-3", "INC-A", 0.7), ("id-2", "INC-Z", 0.9), ("id-0", "INC-0", 0.1)]]
    want = [("id-2"), ("id-3"), ("id-5"), ("id-9"), ("id-1"), ("id-0")]
    for perm in itertools.permutations(matches):
        assert [m.doc["_id"] for m in sorted(perm, key=similarity.order_key)] == want


async def test_same_data_same_list_on_every_request_and_after_a_bulk_rebuild(client, editor, bk, monkeypatch):
    # every incident here is searchable once flushed: none is a "written moments ago" candidate whose text
    # part is its words in common, which would make the list depend on the clock rather than the data
    monkeypatch.setattr(similarity, "RECENT_SECONDS", 0.0)
    ns = unique("repro").lower()
    tag = unique("zq").lower().replace("-", "")
    same = {"title": f"Kafka consumer lag on billing {tag} after the broker disk filled",
            "root_cause": f"broker {tag} log retention misconfigured, disk full", "affected_services": ["billing-kafka"],
            "category": "Infrastructure", "severity": "HIGH"}
    bodies = [
        # two incidents with the same text and fields: equal scores, so their order is the tie-break;
        # written Z first, then A, so creation order and name order disagree
        {"name": f"{tag}-z-twin", **same},
        {"name": f"{tag}-a-twin", **same},
        {"title": f"Billing {tag} consumers fell behind, Kafka broker out of disk", "category": "Infrastructure",
         "root_cause": "retention too long for the traffic", "affected_services": ["billing-kafka"], "severity": "HIGH"},
        {"title": f"Checkout {tag} latency from a slow Kafka consumer", "category": "Software",
         "root_cause": "consumer GC pauses", "affected_services": ["checkout"], "severity": "MEDIUM"},
        {"title": f"TLS certificate {tag} expired on the edge", "category": "Security",
         "root_cause": "renewal job failed", "affected_services": ["edge"], "severity": "CRITICAL"},
    ]
    made = []
    for body in bodies:
        r = await client.post(BASE, headers=editor, json={"namespace": ns, **body})
        assert r.status_code == 201, r.text
        made.append(r.json())
    # an update after creation: the live index holds a replaced version, a rebuilt one does not
    r = await client.patch(f"{BASE}{made[2]['name']}/", headers=editor, json={"resolution": "shortened retention"})
    assert r.status_code == 200, r.text
    query = {"title": f"Kafka consumer lag {tag}, broker disk filling", "affected_services": ["billing-kafka"],
             "category": "Infrastructure", "severity": "HIGH", "namespace": ns, "_id": unique("query")}
    await outbox.flush(bk, index="incidents")
    await bk.search.indices.refresh(index=bk.index_alias("incidents"))

    async def ranked():
        got = await similarity.similar(bk, query, user=READER, limit=10, namespace=ns)
        return [(m.doc["name"], m.score) for m in got]

    first = await ranked()
    names = [n for n, _ in first]
    assert set(names[:4]) == {m["name"] for m in made[:4]}  # the TLS incident shares a word at most
    assert names.index(f"{tag}-a-twin") + 1 == names.index(f"{tag}-z-twin")
    assert dict(first)[f"{tag}-a-twin"] == dict(first)[f"{tag}-z-twin"]
    assert await ranked() == first
    await reindex(bk, incidents_index.INDEX)
    await bk.search.indices.refresh(index=bk.index_alias("incidents"))
    # the same list; the engine's text statistics (and whether an incident is still within the seconds in
    # which it is read from MongoDB) may move a score in its last digits, never the order
    again = await ranked()
    assert [n for n, _ in again] == names
    assert dict(again)[f"{tag}-a-twin"] == dict(again)[f"{tag}-z-twin"]
