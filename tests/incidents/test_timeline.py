"""The documented timeline envelope, reproduced exactly."""

from __future__ import annotations

import asyncio

from tests.conftest import unique

DOC_EXAMPLE = {
    "apiVersion": "v1", "kind": "IncidentTimeline",
    "metadata": {"name": "INC-20260319-001", "namespace": "production", "eventCount": 2},
    "events": [
        {"timestamp": "2026-03-19T15:20:00Z", "type": "Detection", "source": "k8s-watcher",
         "message": "OOMKill detected in pod payment-service-7d4b8c9f6-x2k4m", "severity": "high"},
        {"timestamp": "2026-03-19T15:21:00Z", "type": "RunbookMatch", "source": "runbook-engine",
         "message": "Runbook 'oomkill-standard' selected for remediation",
         "details": {"runbook": "runbook-oomkill-standard", "matchScore": 0.92}},
    ],
}


async def test_documented_example_is_reproduced_exactly(client, editor, viewer):
    body = {"name": "INC-20260319-001", "namespace": "production", "title": "OOMKill in payment-service",
            "severity": "HIGH"}
    r = await client.post("/api/v1/incidents/", json=body, headers=editor)
    assert r.status_code == 201, r.text
    # appended out of order: the envelope is in time order
    ev = DOC_EXAMPLE["events"]
    r = await client.post("/api/v1/incidents/INC-20260319-001/events/", json={"events": [ev[1]]}, headers=editor)
    assert r.status_code == 201, r.text
    r = await client.post("/api/v1/incidents/INC-20260319-001/events/", json={"events": [ev[0]]}, headers=editor)
    assert r.status_code == 201
    r = await client.get("/api/v1/incidents/INC-20260319-001/timeline", headers=viewer)
    assert r.status_code == 200
    assert r.json() == DOC_EXAMPLE
    assert r.headers["content-type"].startswith("application/json")


async def test_unknown_incident_timeline_is_404_in_error_format(client, viewer):
    r = await client.get("/api/v1/incidents/INC-19990101-999/timeline", headers=viewer)
    assert r.status_code == 404
    body = r.json()
    assert set(body) == {"error", "details", "code"}
    assert body["code"] == "INCIDENT_NOT_FOUND"


async def test_timestamps_are_utc_with_z(client, editor):
    name = unique("INC")
    r = await client.post("/api/v1/incidents/", headers=editor, json={
        "name": name, "title": "tz", "timeline": [
            {"timestamp": "2026-03-19T17:20:00+02:00", "type": "Detection", "source": "x", "message": "m"}]})
    assert r.status_code == 201, r.text
    tl = (await client.get(f"/api/v1/incidents/{name}/timeline", headers=editor)).json()
    assert tl["events"][0]["timestamp"] == "2026-03-19T15:20:00Z"
    assert "severity" not in tl["events"][0] and "details" not in tl["events"][0]
    assert tl["metadata"] == {"name": name, "namespace": "default", "eventCount": 1}


async def test_fifty_concurrent_appends_all_persist(client, editor):
    name = unique("INC")
    assert (await client.post("/api/v1/incidents/", json={"name": name, "title": "busy"}, headers=editor)).status_code == 201

    async def append(i: int):
        return await client.post(f"/api/v1/incidents/{name}/events/", headers=editor, json={
            "events": [{"timestamp": f"2026-03-19T15:{i // 60:02d}:{i % 60:02d}Z", "type": "Comment",
                        "source": f"writer-{i}", "message": f"event {i}"}]})

    results = await asyncio.gather(*(append(i) for i in range(50)))
    assert all(r.status_code == 201 for r in results)
    tl = (await client.get(f"/api/v1/incidents/{name}/timeline", headers=editor)).json()
    assert tl["metadata"]["eventCount"] == 50
    assert sorted(e["source"] for e in tl["events"]) == sorted(f"writer-{i}" for i in range(50))
    assert [e["timestamp"] for e in tl["events"]] == sorted(e["timestamp"] for e in tl["events"])


async def test_events_with_equal_timestamps_keep_append_order(client, editor):
    name = unique("INC")
    await client.post("/api/v1/incidents/", json={"name": name, "title": "same time"}, headers=editor)
    for i in range(3):
        await client.post(f"/api/v1/incidents/{name}/events/", headers=editor, json={"events": [
            {"timestamp": "2026-01-01T00:00:00Z", "type": "Comment", "source": "s", "message": f"m{i}"}]})
    tl = (await client.get(f"/api/v1/incidents/{name}/timeline", headers=editor)).json()
    assert [e["message"] for e in tl["events"]] == ["m0", "m1", "m2"]
