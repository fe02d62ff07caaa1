"""app/patterns/mining.py: pure, no database. Hand-made vectors for the clustering; the real embedding
model for one end-to-end grouping check (skipped when the model is not installed)."""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from app.patterns import clustering, mining
from app.patterns.mining import Candidate, cause_text, fix_text, match, mine

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
DIM = 16


def _inc(i: str, cause: str, fix: str = "", *, category: str = "Database", services=("db",), hours: float = 2,
         day: int = 0, title: str | None = None, detection_source: str = "monitoring") -> dict:
    det = T0 + timedelta(days=day)
    return {"_id": i, "name": f"INC-{i}", "title": title or cause, "description": "", "category": category,
            "affected_services": list(services), "root_cause": cause, "resolution": fix, "severity": "HIGH",
            "status": "RESOLVED", "detected_at": det, "resolved_at": det + timedelta(hours=hours), "created_at": det,
            "timeline": [{"type": "Detection", "message": title or cause, "timestamp": det, "source": detection_source},
                         {"type": "Resolution", "message": fix or "resolved", "timestamp": det + timedelta(hours=hours),
                          "source": "oncall"}]}


def _vec(axis: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    v = np.zeros(DIM, np.float32)
    v[axis] = 1.0
    v += rng.normal(0, noise, DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def corpus(seed: int = 0):
    """5 pool-exhaustion incidents (axis 0), 4 certificate expiries (axis 1), 6 unrelated ones (own axes)."""
    rng = np.random.default_rng(seed)
    incs, vecs = [], {}
    for k in range(5):
        i = f"pool-{k}"
        incs.append(_inc(i, f"Database connection pool exhausted under load on shard {k}",
                         "Increased the connection pool size and restarted the api pods", hours=1 + k,
                         title=f"API errors: connection pool exhausted on shard {k}", day=k * 31))
        vecs[i] = _vec(0, 0.05, rng)
    for k in range(4):
        i = f"cert-{k}"
        incs.append(_inc(i, f"TLS certificate expired on the edge proxy {k}", "Renewed the certificate and reloaded nginx",
                         category="Network", services=("edge",), day=k * 40,
                         title=f"Handshake failures: certificate expired on proxy {k}"))
        vecs[i] = _vec(1, 0.05, rng)
    for k in range(6):
        i = f"odd-{k}"
        incs.append(_inc(i, f"Unrelated problem number {k} with widget {k}", category=f"Cat{k}", services=(f"s{k}",)))
        vecs[i] = _vec(2 + k, 0.05, rng)
    return incs, vecs


def _words(texts) -> set[str]:
    return {w for t in texts for w in re.findall(r"[a-z0-9]+", t.lower())}


def test_groups_form_from_similar_and_not_from_unrelated():
    incs, vecs = corpus()
    got = [c for c in mine(incs, vecs) if c.pattern_type == "ROOT_CAUSE"]
    groups = sorted(tuple(c.source_incidents) for c in got)
    assert groups == [tuple(f"cert-{k}" for k in range(4)), tuple(f"pool-{k}" for k in range(5))]
    pool = next(c for c in got if c.source_incidents[0].startswith("pool"))
    assert pool.frequency == 5 and 0 < pool.confidence_score <= pool.cohesion <= 1
    assert pool.success_rate == 1.0
    assert pool.ttr_median_seconds == 3 * 3600
    assert any("median 3 h 00 min" in o for o in pool.outcomes)
    assert pool.per_month == {"2024-01": 1, "2024-02": 1, "2024-03": 1, "2024-04": 1, "2024-05": 1}
    assert pool.key.startswith("ROOT_CAUSE:")


def test_min_frequency():
    incs, vecs = corpus()
    sizes = {c.frequency for c in mine(incs, vecs, min_frequency=5, kinds=("ROOT_CAUSE",))}
    assert sizes == {5}
    assert mine(incs, vecs, min_frequency=6, kinds=("ROOT_CAUSE",)) == []
    assert len(mine(incs, vecs, min_frequency=3, kinds=("ROOT_CAUSE",))) == 2


def test_text_comes_from_members_only():
    incs, vecs = corpus()
    by_id = {i["_id"]: i for i in incs}
    for c in mine(incs, vecs, postmortems=[{"_id": "pm-1", "incident_id": "pool-2"}, {"_id": "pm-x", "incident_id": "odd-1"}]):
        members = [by_id[i] for i in c.source_incidents]
        own = _words([m["title"] for m in members] + [cause_text(m) for m in members] + [fix_text(m) for m in members]
                     + [e["message"] for m in members for e in m["timeline"]])
        for text in (c.name, *c.triggers, *c.actions):
            assert _words([text]) <= own, (text, _words([text]) - own)
        assert c.triggers and c.actions
        if c.source_incidents[0].startswith("pool"):
            assert c.source_postmortems == ("pm-1",)
            assert "connection pool" in " ".join(c.triggers) and any("pool size" in a for a in c.actions)
        else:
            assert c.source_postmortems == ()


def test_resolution_patterns_need_a_recorded_fix():
    incs, vecs = corpus()
    for i in incs:
        if i["_id"].startswith("cert"):
            i["resolution"] = "The public postmortem does not say what restored service: https://x.example/pm"
            i["timeline"] = i["timeline"][:1]
    got = mine(incs, vecs)
    res = [c for c in got if c.pattern_type == "RESOLUTION"]  # TF-IDF fix vectors (no fix_vectors given)
    assert [c.source_incidents for c in res] == [tuple(f"pool-{k}" for k in range(5))]
    cert = next(c for c in got if c.pattern_type == "ROOT_CAUSE" and c.source_incidents[0].startswith("cert"))
    assert cert.success_rate == 0.0 and cert.actions == ()
    assert fix_text(incs[5]) == ""


def test_duplicates_and_unresolved_are_not_mined():
    incs, vecs = corpus()
    incs[0]["resolution"] = "Closed as a duplicate of INC-pool-1"
    incs[1]["status"] = "INVESTIGATING"
    got = mine(incs, vecs, kinds=("ROOT_CAUSE",))
    pool = next(c for c in got if c.source_incidents[0].startswith("pool"))
    assert pool.source_incidents == ("pool-2", "pool-3", "pool-4")


def test_detection_patterns():
    incs, vecs = corpus()
    for i in incs[:3]:
        i["timeline"][0]["source"] = "customer-support"
    got = [c for c in mine(incs, vecs) if c.pattern_type == "DETECTION"]
    assert [c.source_incidents for c in got] == [("pool-0", "pool-1", "pool-2")]


def _stored(c: Candidate, pid: str) -> dict:
    return {"_id": pid, "pattern_type": c.pattern_type, "source_incidents": list(c.source_incidents)}


def test_match_keeps_identity_when_one_member_changes():
    incs, vecs = corpus()
    first = mine(incs, vecs, kinds=("ROOT_CAUSE",))
    stored = [_stored(c, f"p{k}") for k, c in enumerate(first)]
    pool_id = next(s["_id"] for s in stored if s["source_incidents"][0].startswith("pool"))
    # pool-4 leaves (no longer resolved), pool-5 arrives: 1 of 5 members changed
    rng = np.random.default_rng(9)
    incs[4]["status"] = "OPEN"
    incs.append(_inc("pool-5", "Database connection pool exhausted under load on shard 5",
                     "Increased the connection pool size"))
    vecs["pool-5"] = _vec(0, 0.05, rng)
    second = mine(incs, vecs, kinds=("ROOT_CAUSE",))
    pairs = match(stored, second)
    pool_pair = next((e, c) for e, c in pairs if c.source_incidents[0].startswith("pool"))
    assert pool_pair[0]["_id"] == pool_id
    assert pool_pair[1].source_incidents == ("pool-0", "pool-1", "pool-2", "pool-3", "pool-5")
    assert all(e is not None for e, _ in pairs) and len({e["_id"] for e, _ in pairs}) == len(pairs)


def test_match_makes_a_new_pattern_for_disjoint_members():
    incs, vecs = corpus()
    first = mine(incs, vecs, kinds=("ROOT_CAUSE",))
    stored = [_stored(c, "old") for c in first if c.source_incidents[0].startswith("pool")]
    rng = np.random.default_rng(3)
    fresh = [_inc(f"new-{k}", f"Database connection pool exhausted again {k}") for k in range(4)]
    fvecs = {f"new-{k}": _vec(0, 0.05, rng) for k in range(4)}
    pairs = match(stored, mine(fresh, fvecs, kinds=("ROOT_CAUSE",)))
    assert len(pairs) == 1 and pairs[0][0] is None
    # another type never matches, and one stored pattern serves at most one candidate
    assert match([{**stored[0], "pattern_type": "RESOLUTION"}], first)[0][0] is None
    twice = match(stored, list(first) + list(first))
    assert sum(1 for e, _ in twice if e is not None) == 1


def test_deterministic_and_order_independent():
    incs, vecs = corpus()
    a = mine(incs, vecs)
    shuffled = list(incs)
    random.Random(5).shuffle(shuffled)
    b = mine(shuffled, dict(reversed(list(vecs.items()))))
    assert a == b and a == mine(incs, vecs)


def test_blocked_path_matches_exact():
    rng = np.random.default_rng(1)
    incs, vecs = [], {}
    for g in range(12):
        for k in range(8):
            i = f"g{g:02d}-{k}"
            incs.append(_inc(i, f"cause {g} variant {k}", category=f"C{g % 3}", services=(f"s{g}",)))
            vecs[i] = _vec(g, 0.1, rng)
    exact = mine(incs, vecs, kinds=("ROOT_CAUSE",))
    blocked = mine(incs, vecs, kinds=("ROOT_CAUSE",), exact_max=10)
    assert [c.source_incidents for c in exact] == [c.source_incidents for c in blocked]
    assert len(exact) == 12


def test_agglomerate_average_linkage_is_exact_on_sums():
    rng = np.random.default_rng(2)
    F = rng.normal(size=(30, 8)).astype(np.float32)
    F /= np.linalg.norm(F, axis=1, keepdims=True)
    groups = clustering.agglomerate(F, np.ones(30), 0.2)
    for g in groups:  # each merge happened at >= cut: the final group's cohesion stays >= cut for pairs merged
        if len(g) > 1:
            assert clustering.cohesion(F[g]) >= 0.2 - 1e-6
    assert sorted(i for g in groups for i in g) == list(range(30))


def test_with_the_real_model():
    from app import embeddings

    if not embeddings.available():
        pytest.skip("embedding model not installed")
    causes = ["Database connection pool exhausted during traffic spike",
              "The connection pool to Postgres ran out of connections under heavy load",
              "Too many concurrent queries exhausted the database connection pool",
              "TLS certificate expired on the load balancer",
              "Expired SSL certificate on the API gateway broke HTTPS",
              "The wildcard certificate was not renewed and expired",
              "A typo in a firewall rule blocked all ingress",
              "Disk filled up with logs on the build server"]
    cats = ["Database"] * 3 + ["Network"] * 3 + ["Security", "Infrastructure"]
    incs = [_inc(f"i{k}", c, category=cats[k], services=()) for k, c in enumerate(causes)]
    vecs = dict(zip([i["_id"] for i in incs], embeddings.embed([cause_text(i) for i in incs])))
    got = sorted(c.source_incidents for c in mine(incs, vecs, kinds=("ROOT_CAUSE",)))
    assert got == [("i0", "i1", "i2"), ("i3", "i4", "i5")]


# --- duplicates (issue 10: twin incidents inflated a pattern's frequency) ------------------------------

def test_an_incident_closed_as_a_duplicate_counts_once():
    incs, vecs = corpus()
    before = next(c for c in mine(incs, vecs) if c.source_incidents[0].startswith("pool"))
    # two twins of pool-0 (the same incident recorded twice, closed as its duplicate), one with a normal
    # resolution: `duplicate_of` alone decides
    for k, resolution in ((0, "Increased the connection pool size and restarted the api pods"), (1, "")):
        twin = {**incs[0], "_id": f"twin-{k}", "name": f"INC-twin-{k}", "status": "CLOSED", "duplicate_of": "pool-0",
                "resolution": resolution}
        incs.append(twin)
        vecs[twin["_id"]] = vecs["pool-0"]
    incs.append({**incs[1], "_id": "normal", "duplicate_of": None})  # None / absent: a normal incident
    vecs["normal"] = vecs["pool-1"]
    after = next(c for c in mine(incs, vecs) if c.source_incidents[0].startswith("normal")
                 or c.source_incidents[-1].startswith("pool"))
    assert "twin-0" not in after.source_incidents and "twin-1" not in after.source_incidents
    assert after.frequency == before.frequency + 1 and "normal" in after.source_incidents
    assert mining.is_duplicate({"duplicate_of": "x"}) and mining.is_duplicate({"resolution": "Duplicate of INC-1"})
    assert not mining.is_duplicate({"duplicate_of": None, "resolution": "Restarted"}) and not mining.is_duplicate({})


def test_only_duplicates_make_no_pattern():
    incs, vecs = corpus()
    pool = [i for i in incs if i["_id"].startswith("pool")]
    twins = [{**pool[0], "_id": f"twin-{k}", "duplicate_of": "pool-0"} for k in range(4)]
    vecs.update({t["_id"]: vecs["pool-0"] for t in twins})
    got = mine([pool[0], *twins], vecs, min_frequency=2)
    assert got == []  # one real incident, however many times it was recorded


# --- names (issue 10: weak single-word names) ------------------------------------------------------------

def _group(causes: list[str], *, services=("db",), category="Database", prefix="g") -> list[dict]:
    return [_inc(f"{prefix}-{k}", c, services=services, category=category, title=c) for k, c in enumerate(causes)]


def _name_of(members: list[dict], others: list[dict]) -> str:
    incs = members + others
    vecs = {i["_id"]: _vec(0 if i in members else 1 + k % (DIM - 1), 0.01, np.random.default_rng(k))
            for k, i in enumerate(incs)}
    got = [c for c in mine(incs, vecs, kinds=("ROOT_CAUSE",))
           if set(c.source_incidents) == {m["_id"] for m in members}]
    assert got, [c.source_incidents for c in mine(incs, vecs, kinds=("ROOT_CAUSE",))]
    return got[0].name


# the rest of the corpus: many incidents saying "outage" and "network", none about what the group shares
OTHERS = [f"Network outage number {k} in region {k}" for k in range(12)]


def test_a_name_is_a_members_phrase_holding_what_they_share_not_what_the_corpus_uses_everywhere():
    members = _group(["Network outage: the connection pool ran dry on orders",
                      "Outage as the connection pool ran dry under load",
                      "Network outage, connection pool ran dry at peak"])
    others = _group(OTHERS, services=("edge",), category="Network", prefix="o")
    name = _name_of(members, others)
    assert "connection pool ran dry" in name.lower(), name
    assert len(re.findall(r"[A-Za-z]{3,}", name)) >= 3 and name[0].isupper(), name


def test_a_vendor_word_alone_does_not_name_a_group():
    members = [*_group(["github", "github degraded", "github"], services=("github",), category="Infrastructure")]
    members[1]["affected_services"] = ["circleci", "github"]
    others = _group(OTHERS, services=("edge",), category="Network", prefix="o")
    name = _name_of(members, others)
    assert len(re.findall(r"[A-Za-z]{3,}", name)) >= 3 and name.lower() != "github", name
    assert name == "Infrastructure incidents affecting github, circleci"


def test_a_rare_phrase_names_the_group_in_a_members_words():
    members = _group(["Transaction ID wraparound stalled writes on the primary",
                      "Postgres wraparound stalled writes for an hour",
                      "Autovacuum fell behind and wraparound stalled writes"], services=("pg",))
    others = _group(OTHERS, services=("edge",), category="Network", prefix="o")
    name = _name_of(members, others)
    assert "wraparound stalled writes" in name.lower(), name
