"""Predictions for an incident in flight (GET /api/v1/incidents/{name}/predictions/, GraphQL Incident.predictions):
categories from resolved look-alikes, time to resolve from their resolution times, what it rests on, how sure;
classification applies to what it rests on; an incident with nothing like it says so."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from app.predictions.service import distribution, weighted_quantile
from app.timefmt import isoz, utcnow
from tests.incidents.test_graphql import gql

INCIDENTS = "/api/v1/incidents/"


async def _resolved(client, admin, *, title: str, category: str, hours: float, level: str = "INTERNAL",
                    namespace: str) -> dict:
    detected = utcnow() - timedelta(days=3)
    r = await client.post(INCIDENTS, headers=admin, json={
        "title": title, "category": category, "namespace": namespace, "severity": "HIGH",
        "affected_services": [f"{namespace}-svc"], "data_classification": level, "detected_at": isoz(detected)})
    assert r.status_code == 201, r.text
    r = await client.post(f"{INCIDENTS}{r.json()['name']}/resolve/", headers=admin, json={
        "resolution": "failed over and raised the pool size", "root_cause": f"{category} fault",
        "resolved_at": isoz(detected + timedelta(hours=hours))})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
async def world(client, admin):
    word = f"zq{uuid.uuid4().hex[:6]}"  # vocabulary no other test uses
    ns = f"pred-{word}"
    db = [await _resolved(client, admin, title=f"{word} quasardb connection pool exhausted", category="Database",
                          hours=h, namespace=ns) for h in (1, 2, 3, 4)]
    net = [await _resolved(client, admin, title=f"{word} quasardb pool exhausted after bgp flap", category="Network",
                           hours=10, namespace=ns)]
    secret = await _resolved(client, admin, title=f"{word} quasardb connection pool exhausted again",
                             category="Security", hours=50, level="RESTRICTED", namespace=ns)
    r = await client.post(INCIDENTS, headers=admin, json={
        "title": f"{word} quasardb connection pool exhausted", "category": "Database", "namespace": ns,
        "severity": "HIGH", "affected_services": [f"{ns}-svc"], "status": "INVESTIGATING"})
    assert r.status_code == 201, r.text
    learning = await client.post(INCIDENTS, headers=admin, json={
        "title": f"{word} quasardb connection pool exhausted", "namespace": ns, "severity": "HIGH",
        "affected_services": [f"{ns}-svc"], "status": "INVESTIGATING"})
    lone = await client.post(INCIDENTS, headers=admin, json={"title": f"{uuid.uuid4().hex} nothing alike",
                                                              "severity": "LOW", "status": "OPEN"})
    return {"open": r.json(), "db": db, "net": net, "secret": secret, "lone": lone.json(),
            "learning": learning.json()}


async def test_the_likely_causes_and_time_to_resolve_come_from_the_look_alikes(client, editor, world):
    r = await client.get(f"{INCIDENTS}{world['open']['name']}/predictions/", headers=editor)
    assert r.status_code == 200, r.text
    p = r.json()
    causes = {c["category"]: c for c in p["likely_root_causes"]}
    assert p["likely_root_causes"][0]["category"] == "Database" and causes["Database"]["look_alikes"] >= 4
    assert causes["Database"]["probability"] > causes["Network"]["probability"] > 0
    assert sum(c["probability"] for c in p["likely_root_causes"]) <= 1.0 + 1e-6
    based = {i["name"] for i in p["based_on"]["incidents"]}
    assert {i["name"] for i in world["db"] + world["net"]} <= based
    assert p["reported_category"] == "Database"
    ttr = p["time_to_resolve"]
    assert ttr["samples"] >= 5 and 3600 <= ttr["p50"] <= 4 * 3600 and ttr["p90"] >= ttr["p50"]
    assert p["confidence"]["look_alikes"] >= 5
    # no root cause yet: symptoms alone have not beaten the base rates, and it says so
    assert p["confidence"]["level"] == "LOW" and "Symptoms only" in p["confidence"]["explanation"]


async def test_it_follows_what_the_incident_learns(client, editor, admin, world):
    r = await client.patch(f"{INCIDENTS}{world['learning']['name']}/", headers=admin,
                           json={"root_cause": "Database fault: the connection pool was exhausted"})
    assert r.status_code == 200, r.text
    p = (await client.get(f"{INCIDENTS}{world['learning']['name']}/predictions/", headers=editor)).json()
    assert p["likely_root_causes"][0]["category"] == "Database"
    assert p["confidence"]["level"] in ("MEDIUM", "HIGH"), p["confidence"]


async def test_what_it_rests_on_is_only_what_the_reader_may_see(client, editor, admin, world):
    seen = (await client.get(f"{INCIDENTS}{world['open']['name']}/predictions/", headers=editor)).json()
    assert world["secret"]["name"] not in {i["name"] for i in seen["based_on"]["incidents"]}
    assert "Security" not in {c["category"] for c in seen["likely_root_causes"] if c["look_alikes"]}
    everything = (await client.get(f"{INCIDENTS}{world['open']['name']}/predictions/", headers=admin)).json()
    assert world["secret"]["name"] in {i["name"] for i in everything["based_on"]["incidents"]}


async def test_an_incident_open_longer_than_its_look_alikes_took_is_called_an_outlier(client, editor, admin, world):
    word = world["open"]["title"].split()[0]
    r = await client.post(INCIDENTS, headers=admin, json={
        "title": f"{word} quasardb connection pool exhausted", "namespace": world["open"]["namespace"],
        "severity": "HIGH", "affected_services": world["open"]["affected_services"], "status": "INVESTIGATING",
        "detected_at": isoz(utcnow() - timedelta(days=2))})
    ttr = (await client.get(f"{INCIDENTS}{r.json()['name']}/predictions/", headers=editor)).json()["time_to_resolve"]
    assert ttr["elapsed"] > ttr["p90"] and "outlier" in ttr["explanation"], ttr


async def test_an_incident_like_no_other_says_it_has_no_evidence(client, editor, world):
    p = (await client.get(f"{INCIDENTS}{world['lone']['name']}/predictions/", headers=editor)).json()
    assert p["confidence"]["level"] == "LOW"
    if not p["based_on"]["incidents"]:
        assert "base rates" in p["confidence"]["explanation"]
    assert p["time_to_resolve"]["p50"] is None or p["time_to_resolve"]["samples"] >= 3


async def test_graphql_and_hidden_or_missing_incidents(client, editor, viewer, admin, world):
    out = await gql(client, editor, 'query($n: String) { incident(name: $n) { predictions { likelyRootCauses '
                                    '{ category probability } timeToResolve { p50 p90 } confidence { level '
                                    'explanation } basedOn { incidents { name } } } } }', n=world["open"]["name"])
    pred = out["data"]["incident"]["predictions"]
    assert pred["likelyRootCauses"][0]["category"] == "Database" and pred["timeToResolve"]["p50"] is not None
    assert (await client.get(f"{INCIDENTS}no-such-incident/predictions/", headers=editor)).status_code == 404
    hidden = (await client.get(f"{INCIDENTS}{world['secret']['name']}/predictions/", headers=viewer))
    assert hidden.status_code == 404 and hidden.json()["code"] == "INCIDENT_NOT_FOUND"
    assert (await client.post(f"{INCIDENTS}{world['open']['name']}/predictions/", headers=admin)).status_code == 405


def test_the_distribution_shrinks_toward_the_base_rates_and_quantiles_are_weighted():
    prior = {"Database": 0.5, "Network": 0.5}
    assert distribution([], prior) == prior
    strong = distribution([("Database", 0.9)] * 6, prior)
    weak = distribution([("Database", 0.3)], prior)
    assert strong["Database"] > weak["Database"] > 0.5 and abs(sum(strong.values()) - 1) < 1e-9
    assert weighted_quantile([(1, 1), (2, 1), (10, 1)], 0.5) == 2
    assert weighted_quantile([(1, 1), (2, 1), (10, 8)], 0.5) == 10
