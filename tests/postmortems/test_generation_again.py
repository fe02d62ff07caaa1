"""A manual `generate_postmortem/` after the incident's last generation finished starts a new one with
trigger `manual`; one still running is returned as is; a PUBLISHED postmortem stays a 409."""

from __future__ import annotations

from app.postmortems import generations
from tests.postmortems.test_generate import EVENTS
from tests.postmortems.test_generations import START, run_or_wait
from tests.postmortems.test_rest import BASE as PM_BASE, INCIDENTS, new_incident


async def test_a_manual_request_after_a_finished_generation_starts_a_new_one(client, editor, admin, tokens, bk):
    inc = await new_incident(client, editor, severity="HIGH", affected_services=["database"], timeline=EVENTS,
                             root_cause="Connection pool exhausted", detected_at="2024-01-15T10:30:00Z")
    r = await client.post(f"{INCIDENTS}{inc['name']}/resolve/", headers=editor, json={"resolution": "Raised pool size"})
    assert r.status_code == 200, r.text
    [auto] = await bk.mongo.postmortem_generations.find({"incident": inc["id"]}).to_list(None)
    assert auto["generation_trigger"] == "incident_resolved"
    assert (await run_or_wait(bk, auto["_id"]))["status"] in ("COMPLETED", "REVIEW_REQUIRED")

    r = await client.post(START, headers=editor, json={"incident_id": inc["name"], "generation_trigger": "manual"})
    assert r.status_code == 202, r.text
    again = r.json()["generation_id"]
    assert again != auto["_id"]
    stored = await bk.mongo.postmortem_generations.find_one({"_id": again})
    assert stored["generation_trigger"] == "manual" and stored["status"] in ("PENDING", "PROCESSING", "COMPLETED",
                                                                             "REVIEW_REQUIRED")
    # asked again while it runs: the same one
    r = await client.post(START, headers=editor, json={"incident_id": inc["id"]})
    if stored["status"] in generations.ACTIVE and \
            (await bk.mongo.postmortem_generations.find_one({"_id": again}))["active"]:
        assert r.status_code == 200 and r.json()["generation_id"] == again, r.text
    await run_or_wait(bk, again)

    # once published, a manual request is a 409 that says so
    pm = await bk.mongo.postmortems.find_one({"incident": inc["id"]})
    await bk.mongo.postmortems.update_one({"_id": pm["_id"]}, {"$set": {"status": "PUBLISHED"}})
    await bk.mongo.postmortem_generations.update_many({"incident": inc["id"]}, {"$set": {"active": False}})
    r = await client.post(START, headers=editor, json={"incident_id": inc["id"]})
    assert r.status_code == 409 and r.json()["code"] == "POSTMORTEM_CLOSED", r.text
    assert (await client.get(f"{PM_BASE}{pm['_id']}/", headers=admin)).json()["status"] == "PUBLISHED"


async def test_the_generations_list_takes_the_incident_by_name_or_id(client, editor, tokens, bk):
    inc = await new_incident(client, editor, severity="MEDIUM")
    gen, _ = await generations.create(bk, incident={"_id": inc["id"]}, user=tokens["editor_user"], trigger="manual")
    for ref in (inc["name"], inc["id"]):
        listed = (await client.get("/api/knowledge/postmortem-generations/", headers=editor,
                                   params={"incident": ref})).json()
        assert [g["id"] for g in listed["results"]] == [gen["_id"]], (ref, listed)
    listed = (await client.get("/api/knowledge/postmortem-generations/", headers=editor,
                               params={"incident": "INC-19990101-999"})).json()
    assert listed["count"] == 0
