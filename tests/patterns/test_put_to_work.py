"""Validated patterns put to work: recommended (LEARNING_PATTERN) when an incident shows their triggers,
and announced once on the incident's timeline by the automatic recommendations."""

from __future__ import annotations

from app.recommendations import jobs
from tests.conftest import unique
from tests.patterns.test_rest import BASE as PATTERNS, pattern
from tests.postmortems.test_rest import new_incident
from tests.recommendations.test_rest import BASE as RECS, generate


async def test_validated_patterns_whose_triggers_match_are_recommended_and_announced(client, admin, editor, bk):
    tag = unique("ledger")
    good = await pattern(client, admin, name=f"Ledger lock contention {tag}",
                         triggers=[f"{tag} write latency", f"lock wait timeout on {tag}", "unrelated signal words"],
                         actions=["kill the long transaction", "add a lock timeout"], confidence_score=0.8)
    await client.post(f"{PATTERNS}{good['id']}/validate/", headers=admin, json={"validation_notes": "seen thrice"})
    unvalidated = await pattern(client, admin, name=f"Unchecked {tag}", triggers=[f"{tag} write latency"])
    secret = await pattern(client, admin, name=f"Secret {tag}", triggers=[f"{tag} write latency"],
                           data_classification="RESTRICTED")
    await client.post(f"{PATTERNS}{secret['id']}/validate/", headers=admin, json={})

    inc = await new_incident(client, editor, title=f"{tag} write latency spiking", severity="MEDIUM",
                             timeline=[{"type": "Detection", "source": "prometheus",
                                        "message": f"Lock wait timeout on {tag} primary"}])
    await generate(client, editor, inc["id"], recommendation_types=["LEARNING_PATTERN"], max_recommendations=10)
    recs = (await client.get(RECS, headers=editor, params={"incident": inc["id"]})).json()["results"]
    assert [r["learning_pattern"] for r in recs] == [good["id"]]  # not the unvalidated one, not the hidden one
    rec = recs[0]
    assert rec["recommendation_type"] == "LEARNING_PATTERN" and rec["suggested_actions"] == good["actions"]
    assert good["name"] in rec["reasoning"] and "2 of the 3" in rec["reasoning"]
    assert {f["factor"] for f in rec["matching_factors"]} >= {"triggers", "pattern_confidence"}
    assert unvalidated["id"] not in str(recs)

    # the automatic recommendations (run at the incident's own INTERNAL level) announce it on the timeline,
    # once, and never the RESTRICTED one
    await jobs.refresh(bk, [inc["id"]])
    await jobs.refresh(bk, [inc["id"]])
    doc = await bk.mongo.incidents.find_one({"_id": inc["id"]})
    announced = [e for e in doc["timeline"] if e.get("source") == jobs.SOURCE]
    assert len(announced) == 1 and announced[0]["type"] == "Analysis"
    assert good["name"] in announced[0]["message"] and "kill the long transaction" in announced[0]["message"]
    assert announced[0]["details"]["learning_pattern"] == good["id"]
    assert secret["name"] not in str(doc["timeline"])
    assert not await bk.mongo.recommendations.count_documents({"incident": inc["id"], "learning_pattern": secret["id"]})


async def test_postmortem_drafts_call_out_a_validated_pattern(client, admin, editor):
    from tests.postmortems.test_rest import BASE as PMS, create_pm

    tag = unique("queue")
    p = await pattern(client, admin, name=f"Queue backlog after deploy {tag}", triggers=[f"{tag} backlog growing"],
                      actions=["roll back the deploy", "drain the queue"], source_incidents=[])
    await client.post(f"{PATTERNS}{p['id']}/validate/", headers=admin, json={"validation_notes": "ok"})
    unvalidated = await pattern(client, admin, name=f"Unvalidated {tag}", triggers=[f"{tag} backlog growing"])
    inc = await new_incident(client, editor, title=f"{tag} backlog growing after release", severity="HIGH",
                             status="RESOLVED", root_cause="A bad deploy", resolution="Rolled back",
                             timeline=[{"type": "Detection", "source": "prometheus", "message": "backlog alert"}])
    pm = await create_pm(client, editor, inc, lessons_learned="")
    r = await client.post(f"{PMS}{pm['id']}/generate_automated/", headers=editor)
    assert r.status_code == 200, r.text  # the fact check accepts the pattern's own words
    lessons = (await client.get(f"{PMS}{pm['id']}/", headers=editor)).json()["lessons_learned"]
    assert f'validated learning pattern "{p["name"]}"' in lessons and "roll back the deploy" in lessons
    assert unvalidated["name"] not in lessons
