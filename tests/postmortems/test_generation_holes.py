"""Hostile tests of postmortem drafting and generation jobs (issue 15): nobody's generation writes a
postmortem above their clearance or names one they cannot see; a postmortem classified below its
incident is refused saying so; and a job that lost its lease writes nothing, while the run that took
it over finishes truthfully. Lease expiries are real (the lease lowered to a second and a half);
a paused worker is simulated in this process by holding its run at a gate with its heartbeat stopped."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from app.postmortems import generations, polish, service
from app.timefmt import utcnow
from app.users.models import Classification, Role, UserCreate
from app.users.service import create_user, issue_token
from tests.conftest import unique
from tests.postmortems.test_generate import EVENTS
from tests.postmortems.test_generations import run_or_wait
from tests.postmortems.test_rest import BASE as PM_BASE, create_pm, new_incident

GEN_BASE = "/api/knowledge/postmortem-generations/"
START = GEN_BASE + "generate_postmortem/"
LEASE = 1.5  # seconds, in these tests


async def resolved_incident(client, headers, **over):
    return await new_incident(client, headers, severity="MEDIUM", status="RESOLVED", affected_services=["database"],
                              affected_teams=["database.team"], root_cause="Connection pool exhausted",
                              resolution="Raised pool size", detected_at="2024-01-15T10:30:00Z",
                              resolved_at="2024-01-15T12:00:00Z", timeline=EVENTS, **over)


async def editor_with(bk, clearance: Classification):
    user = await create_user(bk, data=UserCreate(username=unique(f"ed-{clearance.value.lower()}"), role=Role.EDITOR,
                                                 clearance=clearance))
    return user, {"Authorization": f"Token {await issue_token(bk, user=user)}"}


async def drafts_of(bk, pm_id: str) -> int:
    """How many times a postmortem was drafted (each drafting writes one audit entry with it)."""
    return await bk.mongo.audit_log.count_documents({"subject_id": pm_id,
                                                     "action": {"$in": ["generation", "generate_automated"]}})


# --- 1 and 3: never above the requester's clearance, never naming what they cannot see ---------------

async def test_a_generation_never_rewrites_a_postmortem_above_the_requesters_clearance(client, admin, bk, worker):
    """The reported case: an INTERNAL editor's forced generation for an INTERNAL incident whose postmortem
    is RESTRICTED. The hidden postmortem is left as it is, and the answer is the one an incident without a
    postmortem gets: the editor's generation drafts a postmortem they may see."""
    _, internal = await editor_with(bk, Classification.INTERNAL)
    inc = await new_incident(client, admin, severity="MEDIUM", data_classification="INTERNAL", timeline=EVENTS,
                             affected_services=["database"], root_cause="Connection pool exhausted")
    r = await client.post(f"/api/v1/incidents/{inc['name']}/resolve/", headers=admin,
                          json={"resolution": "Raised pool size"})
    assert r.status_code == 200, r.text
    secret = await create_pm(client, admin, inc, data_classification="RESTRICTED",
                             executive_summary="hand-written X by the incident commander")
    before = await bk.mongo.postmortems.find_one({"_id": secret["id"]})

    r = await client.post(START, headers=internal, json={"incident_id": inc["id"], "force": True})
    assert r.status_code == 202, r.text
    assert r.json() == {"message": "Postmortem generation initiated", "generation_id": r.json()["generation_id"],
                        "status": "PENDING"}
    assert secret["id"] not in r.text
    await asyncio.sleep(6)
    after = await bk.mongo.postmortems.find_one({"_id": secret["id"]})
    assert "hand-written X" in after["executive_summary"]
    assert after == before and await drafts_of(bk, secret["id"]) == 0

    # what the editor sees: their generation, finished, drafting a postmortem they may read
    r = await client.get(f"{GEN_BASE}{r.json()['generation_id']}/", headers=internal)
    assert r.status_code == 200, r.text
    gen = r.json()
    assert gen["status"] in ("COMPLETED", "REVIEW_REQUIRED"), gen
    assert gen["generated_postmortem"] != secret["id"] and gen["postmortem_created"] is True
    assert gen["data_classification"] == "INTERNAL" and secret["id"] not in str(gen)
    mine = await client.get(f"{PM_BASE}{gen['generated_postmortem']}/", headers=internal)
    assert mine.status_code == 200 and mine.json()["incident"] == inc["id"]
    assert (await client.get(f"{PM_BASE}{secret['id']}/", headers=internal)).status_code == 404


async def test_the_clearance_rule_holds_when_the_job_runs(client, admin, bk):
    """Checked again at run time with the requester as they are then: a postmortem reclassified above
    them, or a requester whose clearance was lowered, after the request, is not written."""
    user, headers = await editor_with(bk, Classification.CONFIDENTIAL)
    inc = await resolved_incident(client, admin, data_classification="INTERNAL")
    pm = await create_pm(client, admin, inc, data_classification="CONFIDENTIAL", executive_summary="hand-written Y")
    gen, created = await generations.create(bk, incident={"_id": inc["id"], "data_classification": "INTERNAL"},
                                            user=user, trigger="manual", force=True)
    assert created
    # the requester's clearance is lowered before a worker picks the job up
    await bk.mongo.users.update_one({"_id": user.id}, {"$set": {"clearance": "INTERNAL"}})
    done = await run_or_wait(bk, gen["_id"])
    assert done["status"] in ("COMPLETED", "REVIEW_REQUIRED"), done
    assert done["postmortem"] != pm["id"] and done["data_classification"] == "INTERNAL"
    assert (await bk.mongo.postmortems.find_one({"_id": pm["id"]}))["executive_summary"] == "hand-written Y"
    assert await drafts_of(bk, pm["id"]) == 0

    # a postmortem reclassified above the requester between the request and the run
    other, _ = await editor_with(bk, Classification.CONFIDENTIAL)
    inc2 = await resolved_incident(client, admin, data_classification="INTERNAL")
    pm2 = await create_pm(client, admin, inc2, data_classification="INTERNAL", executive_summary="hand-written Z")
    gen2, _ = await generations.create(bk, incident={"_id": inc2["id"], "data_classification": "INTERNAL"},
                                       user=other, trigger="manual", force=True)
    r = await client.patch(f"{PM_BASE}{pm2['id']}/", headers=admin, json={"data_classification": "RESTRICTED"})
    assert r.status_code == 200, r.text
    done2 = await run_or_wait(bk, gen2["_id"])
    assert done2["postmortem"] != pm2["id"]
    assert (await bk.mongo.postmortems.find_one({"_id": pm2["id"]}))["executive_summary"] == "hand-written Z"
    assert await drafts_of(bk, pm2["id"]) == 0


async def test_a_closed_postmortem_the_requester_cannot_see_is_not_named(client, admin, editor, bk):
    """The 409 POSTMORTEM_CLOSED names a closed postmortem the caller may see; one they may not see is not
    named, not even by a refusal (they are answered as for an incident without a postmortem)."""
    _, internal = await editor_with(bk, Classification.INTERNAL)
    inc = await resolved_incident(client, admin, data_classification="INTERNAL")
    hidden = await create_pm(client, admin, inc, data_classification="RESTRICTED")
    await bk.mongo.postmortems.update_one({"_id": hidden["id"]}, {"$set": {"status": "PUBLISHED"}})
    r = await client.post(START, headers=internal, json={"incident_id": inc["id"]})
    assert r.status_code == 202, r.text
    assert hidden["id"] not in r.text and "PUBLISHED" not in r.text
    gen = await run_or_wait(bk, r.json()["generation_id"])
    assert gen["postmortem"] != hidden["id"] and await drafts_of(bk, hidden["id"]) == 0

    # one the caller may see is named, as before
    inc2 = await resolved_incident(client, editor)
    shown = await create_pm(client, editor, inc2)
    await bk.mongo.postmortems.update_one({"_id": shown["id"]}, {"$set": {"status": "ARCHIVED"}})
    r = await client.post(START, headers=editor, json={"incident_id": inc2["id"]})
    assert r.status_code == 409 and r.json()["code"] == "POSTMORTEM_CLOSED", r.text
    assert r.json()["details"] == {"postmortem": shown["id"], "status": "ARCHIVED"}


# --- 2: a postmortem below its incident's classification ----------------------------------------------

async def test_drafting_a_postmortem_classified_below_its_incident_is_refused_saying_so(client, editor, bk):
    inc = await resolved_incident(client, editor, data_classification="CONFIDENTIAL")
    pm = await create_pm(client, editor, inc, data_classification="PUBLIC", executive_summary="")
    assert (await client.get(f"/api/v1/incidents/{inc['name']}/", headers=editor)).status_code == 200
    before = await bk.mongo.postmortems.find_one({"_id": pm["id"]})

    r = await client.post(f"{PM_BASE}{pm['id']}/generate_automated/", headers=editor, json={"force": True})
    assert r.status_code == 409, r.text
    body = r.json()
    assert set(body) == {"error", "details", "code"} and body["code"] == "CLASSIFICATION_BELOW_SOURCE"
    assert "below" in body["error"] and "PUBLIC" in body["error"] and "CONFIDENTIAL" in body["error"]
    assert body["details"] == {"field": "data_classification", "postmortem": "PUBLIC", "incident": "CONFIDENTIAL"}

    q = """mutation($id: ID!) { generatePostmortemDraft(id: $id, force: true) {
      __typename ... on UserError { code message } } }"""
    r = await client.post("/graphql", headers=editor, json={"query": q, "variables": {"id": pm["id"]}})
    assert r.json()["data"]["generatePostmortemDraft"]["code"] == "CLASSIFICATION_BELOW_SOURCE", r.text

    # a generation job: refused the same way before anything is recorded
    count = await bk.mongo.postmortem_generations.count_documents({"incident": inc["id"]})
    r = await client.post(START, headers=editor, json={"incident_id": inc["id"], "force": True})
    assert r.status_code == 409 and r.json()["code"] == "CLASSIFICATION_BELOW_SOURCE", r.text
    assert await bk.mongo.postmortem_generations.count_documents({"incident": inc["id"]}) == count
    assert await bk.mongo.postmortems.find_one({"_id": pm["id"]}) == before


# --- 4: leases -----------------------------------------------------------------------------------------

@pytest.fixture
def short_lease(bk):
    saved = bk.settings.postmortem_generation_lease_seconds
    bk.settings.postmortem_generation_lease_seconds = LEASE
    yield LEASE
    bk.settings.postmortem_generation_lease_seconds = saved


class Gates:
    """Holds chosen calls of an async function until released: the calls for `incident_id` are numbered
    1, 2, ... and those listed in `hold` wait (a paused worker), the others go straight through."""

    def __init__(self, real, incident_id: str, hold=(1,)):
        self.real, self.incident_id, self.calls = real, incident_id, 0
        self.entered = {n: asyncio.Event() for n in hold}
        self.release = {n: asyncio.Event() for n in hold}

    def incident_of(self, args, kwargs) -> str | None:
        inc = kwargs.get("incident")
        if isinstance(inc, dict):
            return inc.get("_id")
        data = kwargs.get("data")
        return getattr(data, "incident", None)

    async def __call__(self, *args, **kwargs):
        if self.incident_of(args, kwargs) == self.incident_id:
            self.calls += 1
            n = self.calls
            if n in self.entered:
                self.entered[n].set()
                await self.release[n].wait()
        return await self.real(*args, **kwargs)


def pause_heartbeat_of_first_claim(monkeypatch):
    """The first run of a generation is a paused process: its heartbeat (app/leases.py) does not beat either."""
    from app import leases

    real = leases.Jobs.heartbeat

    @contextlib.asynccontextmanager
    async def paused(bk, claimed):
        yield

    def heartbeat(self, bk, claimed):
        return paused(bk, claimed) if claimed.get("attempts") == 1 else real(self, bk, claimed)

    monkeypatch.setattr(leases.Jobs, "heartbeat", heartbeat)


async def wait_for(event: asyncio.Event, what: str, timeout: float = 15) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"never reached: {what}") from None


async def until_lease_expired(bk, gen_id: str) -> None:
    doc = await bk.mongo.postmortem_generations.find_one({"_id": gen_id})
    assert doc["status"] == "PROCESSING", doc
    await asyncio.sleep(max(0.0, (doc["leased_until"] - utcnow()).total_seconds()) + 0.05)


async def test_a_slow_generation_keeps_its_lease(client, editor, tokens, bk, short_lease, monkeypatch):
    """A generation that takes longer than its lease is not taken over: its heartbeat renews it."""
    inc = await resolved_incident(client, editor)
    gate = Gates(polish.polish, inc["id"])
    monkeypatch.setattr(polish, "polish", gate)
    gen, _ = await generations.create(bk, incident={"_id": inc["id"]}, user=tokens["editor_user"], trigger="manual")
    first = asyncio.create_task(generations.run(bk, gen["_id"]))
    try:
        await wait_for(gate.entered[1], "the draft's polishing")
        claimed = await bk.mongo.postmortem_generations.find_one({"_id": gen["_id"]})
        for _ in range(3):  # 3 x 1.2 s: well past the 1.5 s lease
            await asyncio.sleep(1.2)
            await generations.sweep(bk)
            now = await bk.mongo.postmortem_generations.find_one({"_id": gen["_id"]})
            assert now["status"] == "PROCESSING" and now["lease"] == claimed["lease"] and now["attempts"] == 1
            assert now["leased_until"] > utcnow()
    finally:
        gate.release[1].set()
    done = await first
    assert done["status"] == "COMPLETED" and done["attempts"] == 1
    assert gate.calls == 1 and await drafts_of(bk, done["postmortem"]) == 1


async def test_a_generation_that_lost_its_lease_writes_nothing(client, editor, tokens, bk, short_lease, monkeypatch):
    """The reported case: a worker paused past its lease resumes after another took the job over and had
    read the postmortem. The paused one writes nothing and ends quietly; the other drafts it and the
    log ends COMPLETED (it used to end FAILED with CONCURRENT_UPDATE)."""
    inc = await resolved_incident(client, editor)
    pm = await create_pm(client, editor, inc, executive_summary="")
    gate = Gates(polish.polish, inc["id"], hold=(1, 2))
    monkeypatch.setattr(polish, "polish", gate)
    pause_heartbeat_of_first_claim(monkeypatch)
    gen, _ = await generations.create(bk, incident={"_id": inc["id"]}, user=tokens["editor_user"], trigger="manual")

    first = asyncio.create_task(generations.run(bk, gen["_id"]))  # claims, reads the postmortem, drafts...
    await wait_for(gate.entered[1], "the first run's polishing")
    await until_lease_expired(bk, gen["_id"])  # ...and is paused past its lease
    second = asyncio.create_task(generations.sweep(bk))  # the sweep takes it over and reads the postmortem
    try:
        await wait_for(gate.entered[2], "the second run's polishing")
        gate.release[1].set()  # the paused worker resumes
        assert await asyncio.wait_for(first, 15) is None
        assert await drafts_of(bk, pm["id"]) == 0
        assert (await bk.mongo.postmortems.find_one({"_id": pm["id"]}))["executive_summary"] == ""
    finally:
        gate.release[1].set()
        gate.release[2].set()
    await asyncio.wait_for(second, 15)
    doc = await bk.mongo.postmortem_generations.find_one({"_id": gen["_id"]})
    assert doc["status"] == "COMPLETED" and doc["attempts"] == 2, doc.get("error_message")
    assert doc["postmortem"] == pm["id"] and doc["postmortem_created"] is False
    assert await drafts_of(bk, pm["id"]) == 1
    assert (await bk.mongo.postmortems.find_one({"_id": pm["id"]}))["executive_summary"]


async def test_a_generation_that_lost_its_lease_creates_no_postmortem(client, editor, tokens, bk, short_lease,
                                                                      monkeypatch):
    """Paused just before it creates the incident's postmortem: the run that took over creates it; the
    paused one, resuming, creates a second one nowhere."""
    inc = await resolved_incident(client, editor)
    gate = Gates(service.create_postmortem, inc["id"])
    monkeypatch.setattr(service, "create_postmortem", gate)
    pause_heartbeat_of_first_claim(monkeypatch)
    gen, _ = await generations.create(bk, incident={"_id": inc["id"]}, user=tokens["editor_user"], trigger="manual")

    first = asyncio.create_task(generations.run(bk, gen["_id"]))
    try:
        await wait_for(gate.entered[1], "the first run creating the postmortem")
        await until_lease_expired(bk, gen["_id"])
        assert await generations.sweep(bk) >= 1
    finally:
        gate.release[1].set()
    assert await asyncio.wait_for(first, 15) is None
    assert await bk.mongo.postmortems.count_documents({"incident": inc["id"]}) == 1
    doc = await bk.mongo.postmortem_generations.find_one({"_id": gen["_id"]})
    assert doc["status"] == "COMPLETED" and doc["attempts"] == 2 and doc["postmortem_created"] is True


async def test_a_run_that_takes_over_says_the_generation_created_the_postmortem(client, editor, tokens, bk,
                                                                                short_lease, monkeypatch):
    """The first run created the postmortem, then was paused past its lease: the log of the run that took
    over says this generation created it (it used to say it did not), and the postmortem is drafted once."""
    inc = await resolved_incident(client, editor)
    gate = Gates(polish.polish, inc["id"])
    monkeypatch.setattr(polish, "polish", gate)
    pause_heartbeat_of_first_claim(monkeypatch)
    gen, _ = await generations.create(bk, incident={"_id": inc["id"]}, user=tokens["editor_user"], trigger="manual")

    first = asyncio.create_task(generations.run(bk, gen["_id"]))
    try:
        await wait_for(gate.entered[1], "the first run's polishing")
        assert await bk.mongo.postmortems.count_documents({"incident": inc["id"]}) == 1  # created it
        await until_lease_expired(bk, gen["_id"])
        assert await generations.sweep(bk) >= 1
    finally:
        gate.release[1].set()
    assert await asyncio.wait_for(first, 15) is None
    doc = await bk.mongo.postmortem_generations.find_one({"_id": gen["_id"]})
    assert doc["status"] == "COMPLETED" and doc["attempts"] == 2 and doc["postmortem_created"] is True
    assert await bk.mongo.postmortems.count_documents({"incident": inc["id"]}) == 1
    assert await drafts_of(bk, doc["postmortem"]) == 1
