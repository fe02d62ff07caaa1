"""What a mined pattern tells an SRE (issue 16), pure: actions from what the members record (never a
placeholder), names a person would write, twins citing one postmortem counted once, the window."""

from __future__ import annotations

import random
import re

import numpy as np

from app.patterns import mining, wording
from app.patterns.mining import mine
from tests.patterns.test_mining import _inc, _vec, corpus

PLACEHOLDER = "The public postmortem does not say what restored service: https://status.example/pm-1"


def _pool(n: int = 4, *, fixes=None, prefix="pool") -> tuple[list[dict], dict]:
    rng = np.random.default_rng(7)
    incs, vecs = [], {}
    for k in range(n):
        fix = (fixes or [PLACEHOLDER] * n)[k]
        i = f"{prefix}-{k}"
        incs.append(_inc(i, f"Connection pool exhausted after a deploy raised worker concurrency on shard {k}", fix,
                         title=f"Checkout 500s on shard {k}", day=k * 9))
        vecs[i] = _vec(0, 0.03, rng)
    for k in range(5):
        i = f"odd-{k}"
        incs.append(_inc(i, f"Unrelated widget fault {k}", category=f"Cat{k}", services=(f"s{k}",)))
        vecs[i] = _vec(3 + k, 0.03, rng)
    return incs, vecs


def _the(cands, prefix="pool"):
    return next(c for c in cands if c.pattern_type == "ROOT_CAUSE" and c.source_incidents[0].startswith(prefix))


# --- actions ----------------------------------------------------------------------------------------------

def test_a_placeholder_is_not_an_action_and_a_pattern_without_any_says_why():
    incs, vecs = _pool()
    c = _the(mine(incs, vecs))
    assert c.actions == () and c.success_rate == 0.0
    assert "No fix or prevention recorded" in c.description and "not offered for validation" in c.description
    for status_only in ("Restoration begins", "Engineering alerted", "Service restored.", "n/a", PLACEHOLDER):
        assert wording.statements(status_only) == [], status_only


def test_actions_are_whole_statements_from_resolutions_mitigations_and_reviewed_postmortems():
    incs, vecs = _pool(fixes=["Raised the pool size to 200 and restarted the api pods.", PLACEHOLDER,
                              "Raised the pool size to 200 and restarted the api pods", PLACEHOLDER])
    incs[1]["timeline"].append({"type": "Mitigation", "message": "Rolled back the deploy that raised concurrency",
                                "timestamp": incs[1]["detected_at"], "source": "oncall"})
    pms = [{"_id": "pm-3", "incident_id": "pool-3", "status": "PUBLISHED", "lessons_learned": "",
            "action_items": [{"title": "Add an alert on pool saturation above 80 %", "status": "OPEN"},
                             {"title": "Rewrite the ORM", "status": "WONT_DO"}]},
            {"_id": "pm-0", "incident_id": "pool-0", "status": "DRAFT",
             "action_items": [{"title": "Unreviewed draft item about caching", "status": "OPEN"}]}]
    c = _the(mine(incs, vecs, postmortems=pms))
    # the fix two members record comes first, once; then the others; drafts and WONT_DO items are not actions
    assert c.actions[0] == "Raised the pool size to 200 and restarted the api pods", c.actions
    assert sorted(c.actions[1:]) == ["Add an alert on pool saturation above 80 %",
                                     "Rolled back the deploy that raised concurrency"], c.actions
    assert "Fixes or preventions recorded by 4 of 4 incidents" in c.description
    assert c.success_rate == 0.75  # resolved with a fix of their own: pool-0, pool-1 (mitigation), pool-2
    assert not any("does not say" in a for a in c.actions)


def test_a_twins_fix_is_its_canonicals():
    incs, vecs = _pool()
    twin = {**incs[0], "_id": "pool-0-twin", "resolution": "Failed over to the replica and drained the pool",
            "description": "Source: https://status.example/pm-pool-0"}
    incs[0]["description"] = "Source: https://www.status.example/pm-pool-0/"
    vecs[twin["_id"]] = vecs["pool-0"]
    c = _the(mine(incs + [twin], vecs))
    assert "pool-0-twin" not in c.source_incidents and c.frequency == 4
    assert c.actions == ("Failed over to the replica and drained the pool",)


# --- names ------------------------------------------------------------------------------------------------

def test_names_are_phrases_with_three_real_words_never_single_tokens():
    incs, vecs = corpus()
    cands = mine(incs, vecs)
    assert cands
    for c in cands:
        assert len(re.findall(r"[A-Za-z]{3,}", c.name)) >= 3, c.name
        assert c.name[0].isupper() and not c.name.endswith((",", ".", " the", " on")), c.name
    pool = _the(cands)
    assert "connection pool exhausted" in pool.name.lower(), pool.name
    assert len(pool.name) <= wording.NAME_MAX_CHARS


def test_a_long_cause_is_shortened_at_a_boundary_and_a_leaning_clause_never_names():
    assert wording.cut("PostgreSQL transaction ID wraparound forced the database into read-only mode to prevent "
                       "data loss", 80) == "PostgreSQL transaction ID wraparound forced the database into read-only mode"
    name = wording.name_from(["Network saturation in the transit gateways of the region, causing massive packet "
                              "loss and connection drops"], {"packet loss": 3.0}, set())
    assert name == "Network saturation in the transit gateways of the region", name  # never "Causing massive ..."


def test_names_do_not_depend_on_input_order():
    incs, vecs = corpus()
    shuffled = list(incs)
    random.Random(3).shuffle(shuffled)
    assert [c.name for c in mine(incs, vecs)] == [c.name for c in mine(shuffled, vecs)]


# --- twins --------------------------------------------------------------------------------------------------

def test_rows_citing_one_postmortem_count_once_in_frequency_and_clustering():
    incs, vecs = _pool(3)
    for i in incs[:3]:
        i["description"] = f"Source: https://blog.example/{i['_id']}"
    # two more rows citing pool-0's postmortem (one through the web archive, one through a timeline link)
    a = {**incs[0], "_id": "pool-a", "description": "Source: https://web.archive.org/web/2019/https://blog.example/pool-0)"}
    b = {**incs[0], "_id": "pool-b", "description": "",
         "timeline": [*incs[0]["timeline"], {"type": "Comment", "message": "Public postmortem",
                                             "details": {"url": "http://blog.example/pool-0"}}]}
    vecs.update({"pool-a": vecs["pool-0"], "pool-b": vecs["pool-0"]})
    c = _the(mine(incs + [a, b], vecs))
    assert c.source_incidents == ("pool-0", "pool-1", "pool-2") and c.frequency == 3
    kept, twins = mining.canonical(incs + [a, b])
    assert [t["_id"] for t in twins["pool-0"]] == ["pool-a", "pool-b"]
    # only twins of one incident make no pattern at all
    assert mine([incs[0], a, b], vecs, min_frequency=2) == []


# --- the window ---------------------------------------------------------------------------------------------

def test_recent_keeps_the_groups_that_occurred_in_the_window_with_their_history():
    incs, vecs = corpus()
    everything = mine(incs, vecs)
    recent = mine(incs, vecs, recent={"cert-3"})
    assert [c.source_incidents for c in recent if c.pattern_type == "ROOT_CAUSE"] == [
        tuple(f"cert-{k}" for k in range(4))]  # the whole history of the recurring cause, not only cert-3
    assert {c.key for c in recent} <= {c.key for c in everything}
    assert mine(incs, vecs, recent=set()) == []
