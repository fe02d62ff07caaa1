"""Outbound webhooks (issue 21): admins register them; the events the domains announce are written in their own
transactions and sent by a real worker, signed, retried with back-off after a failure, every attempt logged,
redelivered by hand — and the hostile cases beside: targets that reach the service's own network (loopback,
link-local and metadata, private ranges, a name resolving to loopback, IPv6 forms), redirects, non-admins on
every route, the secret never answered, subjects above the owner's clearance never sent."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import threading
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.errors import ValidationFailed
from app.settings import Settings
from app.timefmt import utcnow
from app.users.models import Classification, Role
from app.webhooks import delivery, events, service, targets
from app.webhooks.models import WebhookCreate
from tests.articles.test_classification import person
from tests.conftest import eventually, unique
from tests.incidents.test_graphql import gql
from tests.postmortems.test_rest import create_pm, new_incident

BASE = "/api/knowledge/webhooks/"
INCIDENTS = "/api/v1/incidents/"
POSTMORTEMS = "/api/knowledge/postmortems/"
SECRET = "test-secret-" + "x" * 12


class Receiver:
    """A local HTTP receiver: answers the statuses in `answers` in turn (then 204), records every request."""

    def __init__(self, answers=(), headers=None):
        self.answers = list(answers)
        self.extra = headers or {}
        self.got: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                data = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.got.append(({k.lower(): v for k, v in self.headers.items()}, data))
                self.send_response(receiver.answers.pop(0) if receiver.answers else 204)
                for k, v in receiver.extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def payloads(self) -> list[dict]:
        return [json.loads(body) for _, body in self.got]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
async def hooks(client, admin, bk):
    """Register webhooks (`await hooks(url, events, headers=…)`); every one is deleted afterwards."""
    made: list[str] = []
    receivers: list[Receiver] = []

    async def register(url, evts, headers=admin, **fields):
        r = await client.post(BASE, headers=headers, json={"url": url, "events": evts, "secret": SECRET, **fields})
        assert r.status_code == 201, r.text
        made.append(r.json()["id"])
        return r.json()

    register.receivers = receivers
    yield register
    for wid in made:
        await bk.mongo.webhooks.delete_one({"_id": wid})
        await bk.mongo.webhook_deliveries.delete_many({"webhook_id": wid})
    for rc in receivers:
        rc.close()


def receiver(hooks, *args, **kw) -> Receiver:
    rc = Receiver(*args, **kw)
    hooks.receivers.append(rc)
    return rc


async def deliveries(client, admin, wid: str, **params) -> list[dict]:
    r = await client.get(f"{BASE}{wid}/deliveries/", headers=admin, params=params)
    assert r.status_code == 200, r.text
    return r.json()["results"]


async def resolve(client, headers, incident: dict) -> None:
    r = await client.post(f"{INCIDENTS}{incident['name']}/resolve/", headers=headers,
                          json={"resolution": "restarted the pool", "root_cause": "a leak"})
    assert r.status_code == 200, r.text


def signed(headers: dict, body: bytes, secret: str = SECRET) -> bool:
    want = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers.get("x-signature-256", ""), want)


# --- registration, the secret, who may ------------------------------------------------------------------

async def test_admins_register_list_change_and_delete_and_the_secret_is_never_answered(client, admin, bk, hooks):
    rc = receiver(hooks)
    hook = await hooks(rc.url, ["incident.resolved", "postmortem.published"], description="automation")
    assert hook["has_secret"] is True and "secret" not in hook and SECRET not in json.dumps(hook)
    assert hook["events"] == ["incident.resolved", "postmortem.published"] and hook["active"] is True
    listed = (await client.get(BASE, headers=admin, params={"event": "postmortem.published"})).json()
    assert hook["id"] in [w["id"] for w in listed["results"]] and SECRET not in json.dumps(listed)
    got = (await client.get(f"{BASE}{hook['id']}/", headers=admin)).json()
    assert got == hook

    rotated = "another-secret-" + "y" * 10
    r = await client.patch(f"{BASE}{hook['id']}/", headers=admin,
                           json={"secret": rotated, "events": ["action_item.created"], "active": False})
    assert r.status_code == 200 and rotated not in r.text and r.json()["active"] is False
    assert r.json()["events"] == ["action_item.created"] and r.json()["secret_updated_at"] >= hook["secret_updated_at"]
    assert (await bk.mongo.webhooks.find_one({"_id": hook["id"]}))["secret"] == rotated  # kept to sign, as sent
    assert (await client.patch(f"{BASE}{hook['id']}/", headers=admin, json={"url": None})).status_code == 400
    audit = await bk.mongo.audit_log.find({"subject_type": "webhook", "subject_id": hook["id"]}).to_list(None)
    assert {a["action"] for a in audit} == {"webhook.create", "webhook.update"}
    assert SECRET not in json.dumps(audit, default=str) and rotated not in json.dumps(audit, default=str)
    g = await gql(client, admin, "query($id: ID!) { webhook(id: $id) { id hasSecret active events } }", id=hook["id"])
    assert g["data"]["webhook"] == {"id": hook["id"], "hasSecret": True, "active": False,
                                    "events": ["action_item.created"]}

    assert (await client.delete(f"{BASE}{hook['id']}/", headers=admin)).status_code == 204
    r = await client.get(f"{BASE}{hook['id']}/", headers=admin)
    assert r.status_code == 404 and r.json()["code"] == "WEBHOOK_NOT_FOUND"


async def test_bad_registrations_are_400s(client, admin):
    good = {"url": "https://hooks.example.com/x", "events": ["incident.resolved"], "secret": SECRET}
    for bad in ({**good, "events": []}, {**good, "events": ["incident.opened"]}, {**good, "secret": "short"},
                {**good, "surprise": 1}, {k: v for k, v in good.items() if k != "secret"},
                {**good, "url": "x" * 3000}):
        r = await client.post(BASE, headers=admin, json=bad)
        assert r.status_code == 400 and set(r.json()) == {"error", "details", "code"}, (bad, r.text)


async def test_non_admins_are_refused_on_every_route(client, editor, viewer, admin, hooks):
    rc = receiver(hooks)
    hook = await hooks(rc.url, ["incident.resolved"])
    wid = hook["id"]
    routes = [("GET", BASE, None), ("POST", BASE, {"url": rc.url, "events": ["incident.resolved"], "secret": SECRET}),
              ("GET", f"{BASE}{wid}/", None), ("PATCH", f"{BASE}{wid}/", {"active": False}),
              ("DELETE", f"{BASE}{wid}/", None), ("POST", f"{BASE}{wid}/test/", None),
              ("GET", f"{BASE}{wid}/deliveries/", None), ("GET", f"{BASE}{wid}/deliveries/x/", None),
              ("POST", f"{BASE}{wid}/deliveries/x/redeliver/", None)]
    for who in (editor, viewer):
        for method, path, body in routes:
            r = await client.request(method, path, headers=who, json=body)
            assert r.status_code == 403, (method, path, r.status_code)
        for query in ("{ webhooks { totalCount } }", '{ webhookDeliveries(webhookId: "%s") { totalCount } }' % wid):
            assert (await gql(client, who, query))["errors"][0]["extensions"]["code"] == "PERMISSION_DENIED"
        m = await gql(client, who, 'mutation { deleteWebhook(id: "%s") { __typename } }' % wid)
        assert m["data"]["deleteWebhook"]["__typename"] == "PermissionDeniedError"
    assert (await client.get(f"{BASE}{wid}/", headers=admin)).json()["active"] is True  # nothing changed


# --- targets: what is refused --------------------------------------------------------------------------

@pytest.mark.parametrize("url,code", [
    ("http://169.254.169.254/latest/meta-data/", "WEBHOOK_TARGET_REFUSED"),
    ("http://[fd00:ec2::254]/", "WEBHOOK_TARGET_REFUSED"),
    ("http://100.100.100.200/", "WEBHOOK_TARGET_REFUSED"),
    ("http://[fe80::1]/", "WEBHOOK_TARGET_REFUSED"),
    ("http://10.0.0.5:8080/hook", "WEBHOOK_TARGET_REFUSED"),
    ("http://192.168.1.10/", "WEBHOOK_TARGET_REFUSED"),
    ("https://172.16.0.1/", "WEBHOOK_TARGET_REFUSED"),
    ("http://[fd12:3456::1]/", "WEBHOOK_TARGET_REFUSED"),
    ("http://[::ffff:169.254.169.254]/", "WEBHOOK_TARGET_REFUSED"),
    ("http://[::ffff:10.0.0.1]/", "WEBHOOK_TARGET_REFUSED"),
    ("http://0.0.0.0:8000/", "WEBHOOK_TARGET_REFUSED"),
    ("http://224.0.0.1/", "WEBHOOK_TARGET_REFUSED"),
    ("ftp://hooks.example.com/", "INVALID_URL"),
    ("file:///etc/passwd", "INVALID_URL"),
    ("gopher://127.0.0.1:6379/_FLUSHALL", "INVALID_URL"),
    ("http://user:password@hooks.example.com/", "INVALID_URL"),
    ("http://hooks example.com/", "INVALID_URL"),
    ("http:///nohost", "INVALID_URL"),
    ("http://no-such-host.invalid/", "WEBHOOK_TARGET_UNRESOLVABLE"),
])
async def test_targets_that_reach_the_services_network_are_refused(client, admin, url, code):
    r = await client.post(BASE, headers=admin, json={"url": url, "events": ["incident.resolved"], "secret": SECRET})
    assert r.status_code == 400 and r.json()["code"] == code, r.text
    assert r.json()["details"] == {"field": "url"}


async def test_a_change_to_a_refused_target_is_refused(client, admin, hooks):
    rc = receiver(hooks)
    hook = await hooks(rc.url, ["incident.resolved"])
    r = await client.patch(f"{BASE}{hook['id']}/", headers=admin, json={"url": "http://169.254.169.254/"})
    assert r.status_code == 400 and r.json()["code"] == "WEBHOOK_TARGET_REFUSED"
    assert (await client.get(f"{BASE}{hook['id']}/", headers=admin)).json()["url"] == rc.url


async def test_loopback_is_refused_unless_the_setting_allows_it(bk, tokens):
    """The suite allows loopback (its receivers run here); with the default settings it is refused — by address,
    by a name that resolves to it, and in the other spellings of 127.0.0.1."""
    strict = dataclasses.replace(bk, settings=bk.settings.model_copy(update={"webhook_allow_loopback": False}))
    for url in ("http://127.0.0.1:9/hook", "http://[::1]:9/", "http://localhost:9/", "http://127.1/",
                "http://2130706433/", "http://0x7f000001/", "http://[::ffff:127.0.0.1]/", "http://[2002:7f00:1::]/"):
        with pytest.raises(ValidationFailed) as refused:
            await service.create_webhook(strict, actor=tokens["admin_user"], data=WebhookCreate(
                url=url, events=["incident.resolved"], secret=SECRET))
        assert refused.value.code == "WEBHOOK_TARGET_REFUSED", url
    assert await bk.mongo.webhooks.count_documents({"url": "http://127.0.0.1:9/hook"}) == 0


def test_the_address_rules():
    import ipaddress

    default = Settings(webhook_allow_private=False, webhook_allow_loopback=False)
    private = Settings(webhook_allow_private=True, webhook_allow_loopback=True)
    for a in ("127.0.0.1", "::1", "10.1.2.3", "172.31.255.255", "192.168.0.1", "100.64.0.1", "fc00::1", "192.0.2.7",
              "169.254.169.254", "fe80::1", "0.0.0.0", "::", "255.255.255.255", "240.0.0.1", "ff02::1"):
        assert targets.refusal(ipaddress.ip_address(a), default), a
    for a in ("169.254.169.254", "fd00:ec2::254", "fe80::1", "0.0.0.0", "224.0.0.1", "168.63.129.16"):
        assert targets.refusal(ipaddress.ip_address(a), private), a  # never, whatever the settings
    for a in ("10.1.2.3", "127.0.0.1", "::1", "fd12::1"):
        assert targets.refusal(ipaddress.ip_address(a), private) is None, a
    for a in ("93.184.216.34", "2606:4700::1111", "::ffff:8.8.8.8"):
        assert targets.refusal(ipaddress.ip_address(a), default) is None, a


async def test_the_request_goes_to_the_resolved_address_with_the_urls_host():
    target = await targets.resolve("https://localhost:8443/a/b?c=1", Settings(webhook_allow_loopback=True))
    assert target.ip.is_loopback and target.host == "localhost" and target.host_header == "localhost:8443"
    assert target.pinned_url() in ("https://127.0.0.1:8443/a/b?c=1", "https://[::1]:8443/a/b?c=1")
    assert all(ip.is_loopback for ip in target.ips)


# --- deliveries: signed, retried, logged, redelivered -----------------------------------------------------

async def test_a_resolved_incident_is_delivered_signed_after_a_500_with_back_off(client, admin, editor, bk, hooks,
                                                                                 worker):
    rc = receiver(hooks, answers=[500])
    hook = await hooks(rc.url, ["incident.resolved"])
    inc = await new_incident(client, editor, severity="HIGH")
    await resolve(client, editor, inc)
    # written in the resolving transaction: there before any worker has looked
    written = await bk.mongo.webhook_deliveries.find_one({"webhook_id": hook["id"], "subject_id": inc["id"]})
    assert written is not None and written["event"] == "incident.resolved"

    async def delivered():
        return [d for d in await deliveries(client, admin, hook["id"]) if d["status"] == "delivered"]

    [log] = await eventually(delivered, timeout=30)
    assert len(rc.got) == 2
    headers, body = rc.got[-1]
    payload = json.loads(body)
    assert signed(headers, body) and signed(*rc.got[0])
    assert headers["x-delivery-id"] == payload["delivery_id"] == log["id"] and headers["x-event"] == "incident.resolved"
    assert headers["content-type"] == "application/json" and headers["host"] == rc.url.split("/")[2]
    assert set(payload) == {"event", "delivery_id", "occurred_at", "subject_type", "subject"}
    assert payload["event"] == "incident.resolved" and payload["subject_type"] == "incident"
    subject = payload["subject"]
    assert subject["id"] == inc["id"] and subject["name"] == inc["name"] and subject["status"] == "RESOLVED"
    assert subject["resolution"] == "restarted the pool" and subject["root_cause"] == "a leak"
    assert subject["data_classification"] == "INTERNAL" and subject["resolved_at"].endswith("Z")
    assert log["payload"] == payload and log["attempt_count"] == 2 and log["next_attempt_at"] is None
    first, second = log["attempts"]
    assert (first["status"], first["response_code"], first["error"]) == ("failed", 500, "HTTP 500")
    assert (second["status"], second["response_code"], second["error"]) == ("delivered", 204, None)
    assert first["duration_ms"] >= 0 and first["url"] == rc.url
    gap = (datetime.fromisoformat(second["at"].replace("Z", "+00:00"))
           - datetime.fromisoformat(first["at"].replace("Z", "+00:00"))).total_seconds()
    assert gap >= bk.settings.webhook_first_retry_seconds * 0.9  # the back-off was waited

    # GraphQL reads the same log
    g = await gql(client, admin, """query($id: ID!) { webhookDeliveries(webhookId: $id) { totalCount
        results { id status attemptCount attempts { status responseCode error } } } }""", id=hook["id"])
    page = g["data"]["webhookDeliveries"]
    assert page["totalCount"] == 1 and page["results"][0]["attempts"][0] == {
        "status": "failed", "responseCode": 500, "error": "HTTP 500"}

    # redelivered by hand: the same delivery (id and body) sent again, the log keeps counting
    r = await client.post(f"{BASE}{hook['id']}/deliveries/{log['id']}/redeliver/", headers=admin)
    assert r.status_code == 202 and r.json()["status"] == "pending"
    again = await client.post(f"{BASE}{hook['id']}/deliveries/{log['id']}/redeliver/", headers=admin)
    assert again.status_code in (202, 409)  # 409 while it is still queued
    if again.status_code == 409:
        assert again.json()["code"] == "DELIVERY_QUEUED"

    async def redelivered():
        d = (await client.get(f"{BASE}{hook['id']}/deliveries/{log['id']}/", headers=admin)).json()
        return d if d["status"] == "delivered" and d["redeliveries"] >= 1 else None

    done = await eventually(redelivered, timeout=20)
    assert done["attempt_count"] >= 3 and rc.got[-1][1] == body and rc.got[-1][0]["x-delivery-id"] == log["id"]
    audit = await bk.mongo.audit_log.find_one({"action": "webhook.redeliver", "subject_id": hook["id"]})
    assert audit is not None and audit["changes"]["delivery"] == log["id"]


async def test_a_delivery_a_dead_worker_held_is_taken_over(client, admin, bk, hooks, worker):
    """A worker that died mid-send leaves its lease; once it runs out another worker sends the delivery."""
    rc = receiver(hooks)
    hook = await hooks(rc.url, ["pattern.validated"])
    doc = events.delivery_doc(hook["id"], "pattern.validated", {"_id": unique("pattern"), "name": "Pool exhaustion",
                                                                "data_classification": "INTERNAL"},
                              occurred_at=utcnow())
    doc.update(leased_until=utcnow() + timedelta(seconds=1), lease="the-dead-worker")
    await bk.mongo.webhook_deliveries.insert_one(doc)

    async def sent():
        return (await bk.mongo.webhook_deliveries.find_one({"_id": doc["_id"]}))["status"] == "delivered"

    await eventually(sent, timeout=20)
    assert [p["delivery_id"] for p in rc.payloads()] == [doc["_id"]]


async def test_redirects_are_never_followed(client, admin, bk, hooks, worker):
    elsewhere = receiver(hooks)
    rc = receiver(hooks, answers=[302, 302, 302], headers={"Location": elsewhere.url})
    hook = await hooks(rc.url, ["incident.resolved"])
    r = await client.post(f"{BASE}{hook['id']}/test/", headers=admin)
    assert r.status_code == 202 and r.json()["event"] == "ping" and r.json()["status"] == "pending"

    async def tried():
        d = (await client.get(f"{BASE}{hook['id']}/deliveries/{r.json()['id']}/", headers=admin)).json()
        return d if d["attempts"] else None

    d = await eventually(tried, timeout=20)
    assert d["status"] == "retrying" and d["attempts"][0]["response_code"] == 302
    assert "redirect" in d["attempts"][0]["error"] and d["next_attempt_at"] is not None
    await asyncio.sleep(0.5)
    assert elsewhere.got == [] and signed(*rc.got[0]) and json.loads(rc.got[0][1])["event"] == "ping"


async def test_a_refused_target_at_delivery_time_is_a_failed_attempt_and_retries_end(bk, tokens):
    """The rules run again at delivery (DNS may have changed); after the last attempt the delivery is failed."""
    strict = dataclasses.replace(bk, settings=bk.settings.model_copy(update={"webhook_allow_loopback": False,
                                                                             "webhook_max_attempts": 2}))
    hook = {"_id": unique("hook"), "url": "http://127.0.0.1:9/hook", "events": ["incident.resolved"],
            "secret": SECRET, "active": True, "created_by": tokens["admin_user"].id}
    await bk.mongo.webhooks.insert_one(hook)
    try:
        doc = events.delivery_doc(hook["_id"], "incident.resolved", {"_id": unique("inc"),
                                                                     "data_classification": "PUBLIC"},
                                  occurred_at=utcnow())
        held = {"lease": "mine", "leased_until": utcnow() + timedelta(seconds=60)}  # no worker takes it meanwhile
        await bk.mongo.webhook_deliveries.insert_one({**doc, **held})
        assert await delivery.deliver(strict, {**doc, **held}) == "retrying"
        now = await bk.mongo.webhook_deliveries.find_one({"_id": doc["_id"]})
        assert now["attempts"][0]["error"].startswith("refused: ") and "loopback" in now["attempts"][0]["error"]
        assert now["next_attempt_at"] > utcnow() and now["active"] is True
        await bk.mongo.webhook_deliveries.update_one({"_id": doc["_id"]}, {"$set": held})
        assert await delivery.deliver(strict, {**now, **held}) == "failed"
        final = await bk.mongo.webhook_deliveries.find_one({"_id": doc["_id"]})
        assert "active" not in final and final["expires_at"] > utcnow() and len(final["attempts"]) == 2
    finally:
        await bk.mongo.webhooks.delete_one({"_id": hook["_id"]})
        await bk.mongo.webhook_deliveries.delete_many({"webhook_id": hook["_id"]})


def test_back_off_doubles_from_the_first_retry_up_to_the_cap():
    s = Settings(webhook_first_retry_seconds=5, webhook_max_backoff_seconds=60)
    assert [delivery.backoff(s, n) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]
    assert Settings.model_fields["webhook_first_retry_seconds"].default <= 10  # the first retry within 10 s by default
    assert Settings.model_fields["webhook_allow_loopback"].default is False


async def test_a_slow_receiver_times_out_fast():
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts, never answers
    try:
        started = time.monotonic()
        out = await delivery.post(f"http://127.0.0.1:{listener.getsockname()[1]}/", b"{}", {},
                                  Settings(webhook_allow_loopback=True, webhook_timeout_seconds=0.5))
        assert out.response_code is None and "timed out" in out.error and time.monotonic() - started < 3
    finally:
        listener.close()


# --- what is sent: classification, subjects -----------------------------------------------------------

async def test_a_subject_above_the_owners_clearance_is_skipped_not_sent(client, admin, editor, bk, hooks, worker):
    owner = await person(bk, Role.ADMIN, Classification.INTERNAL)
    owner_headers = {"Authorization": owner["Authorization"]}
    rc = receiver(hooks)
    hook = await hooks(rc.url, ["incident.resolved"], headers=owner_headers)
    secret_inc = await new_incident(client, admin, severity="HIGH", data_classification="CONFIDENTIAL")
    open_inc = await new_incident(client, editor, severity="LOW", data_classification="PUBLIC")
    await resolve(client, admin, secret_inc)
    await resolve(client, editor, open_inc)

    async def settled():
        docs = await bk.mongo.webhook_deliveries.find({"webhook_id": hook["id"]}).to_list(None)
        return docs if len(docs) == 2 and all(d["status"] in ("delivered", "skipped") for d in docs) else None

    docs = {d["subject_id"]: d for d in await eventually(settled, timeout=30)}
    skipped = docs[secret_inc["id"]]
    assert skipped["status"] == "skipped" and "classified CONFIDENTIAL" in skipped["attempts"][0]["error"]
    assert docs[open_inc["id"]]["status"] == "delivered"
    assert [p["subject"]["id"] for p in rc.payloads()] == [open_inc["id"]]  # the secret one never left
    # the owner's delivery log lists only what they may see; a RESTRICTED admin sees both
    assert [d["subject_id"] for d in await deliveries(client, owner_headers, hook["id"])] == [open_inc["id"]]
    assert {d["subject_id"] for d in await deliveries(client, admin, hook["id"])} == set(docs)
    r = await client.post(f"{BASE}{hook['id']}/deliveries/{skipped['_id']}/redeliver/", headers=owner_headers)
    assert r.status_code == 404  # above them: answered like a missing one


async def test_a_deactivated_or_demoted_owner_sends_nothing(bk, tokens):
    owner = await person(bk, Role.ADMIN, Classification.RESTRICTED)
    hook = {"_id": unique("hook"), "url": "http://127.0.0.1:9/", "secret": SECRET, "active": True,
            "created_by": owner["user"].id}
    subject = {"data_classification": "PUBLIC"}
    assert await delivery.skip_reason(bk, hook, subject) is None
    await bk.mongo.users.update_one({"_id": owner["user"].id}, {"$set": {"role": "editor"}})
    assert "no longer an admin" in await delivery.skip_reason(bk, hook, subject)
    await bk.mongo.users.update_one({"_id": owner["user"].id}, {"$set": {"role": "admin", "is_active": False}})
    assert "deactivated" in await delivery.skip_reason(bk, hook, subject)
    assert await delivery.skip_reason(bk, {**hook, "active": False}, subject) == "the webhook is inactive"
    assert await delivery.skip_reason(bk, None, subject) == "the webhook was deleted"


async def test_action_items_carry_their_automation_and_are_announced(client, admin, editor, bk, hooks):
    rc = receiver(hooks)
    hook = await hooks(rc.url, ["action_item.created", "action_item.overdue", "postmortem.published"])
    inc = await new_incident(client, editor, severity="HIGH")
    runbook = {"kind": "runbook", "target": "https://runbooks.example.com/db/pool-resize"}
    pm = await create_pm(client, editor, inc, action_items=[
        {"title": "Resize the pool", "priority": "HIGH", "automation": runbook},
        {"title": "Alert on pool usage", "automation": {"kind": "webhook_event", "target": "action_item.created"}},
        {"title": "Write it down"}])
    assert [i["automation"] for i in pm["action_items"]] == [
        runbook, {"kind": "webhook_event", "target": "action_item.created"}, None]
    for bad in ({"kind": "runbook", "target": "javascript:alert(1)"}, {"kind": "runbook", "target": "ftp://x/y"},
                {"kind": "webhook_event", "target": "incident.opened"}, {"kind": "cron", "target": "* * * * *"}):
        r = await client.post(POSTMORTEMS, headers=editor, json={"title": "x", "incident": inc["id"],
                                                                 "action_items": [{"title": "x", "automation": bad}]})
        assert r.status_code == 400, bad
    # the hook hears every postmortem: a worker may be writing a generated draft of another test's meanwhile
    mine = {"webhook_id": hook["id"], "event": "action_item.created", "payload.subject.postmortem.id": pm["id"]}
    created = await bk.mongo.webhook_deliveries.find(mine).to_list(None)
    subjects = {d["payload"]["subject"]["title"]: d["payload"]["subject"] for d in created}
    assert set(subjects) == {"Resize the pool", "Alert on pool usage", "Write it down"}
    first = subjects["Resize the pool"]
    assert first["automation"] == runbook and first["postmortem"] == {"id": pm["id"], "title": pm["title"],
                                                                      "incident": inc["id"]}
    assert first["id"] == pm["action_items"][0]["id"] and first["data_classification"] == "INTERNAL"

    # a whole-list write announces only the item it adds; a change of one item's automation announces nothing
    items = pm["action_items"] + [{"title": "Add a canary"}]
    r = await client.patch(f"{POSTMORTEMS}{pm['id']}/", headers=editor,
                           json={"action_items": items, "action_items_version": pm["action_items_version"]})
    assert r.status_code == 200, r.text
    item_id = pm["action_items"][2]["id"]
    r = await client.patch(f"{POSTMORTEMS}{pm['id']}/action_items/{item_id}/", headers=editor,
                           json={"automation": runbook})
    assert r.status_code == 200 and r.json()["action_items"][2]["automation"] == runbook
    r = await client.patch(f"{POSTMORTEMS}{pm['id']}/action_items/{item_id}/", headers=editor,
                           json={"automation": None})
    assert r.status_code == 200 and r.json()["action_items"][2]["automation"] is None
    titles = [d["payload"]["subject"]["title"] async for d in bk.mongo.webhook_deliveries.find(mine)]
    assert sorted(titles) == sorted(["Resize the pool", "Alert on pool usage", "Write it down", "Add a canary"])
    g = await gql(client, editor,
                  "query($id: ID!) { postmortem(id: $id) { actionItems { automation { kind target } } } }", id=pm["id"])
    assert g["data"]["postmortem"]["actionItems"][0]["automation"] == {"kind": "RUNBOOK", "target": runbook["target"]}


async def test_overdue_action_items_are_announced_once(client, editor, bk, hooks):
    from app.postmortems import automation

    rc = receiver(hooks)
    hook = await hooks(rc.url, ["action_item.overdue"])
    inc = await new_incident(client, editor, severity="LOW")
    past, future = utcnow() - timedelta(hours=2), utcnow() + timedelta(days=3)
    pm = await create_pm(client, editor, inc, action_items=[
        {"title": "Late one", "due_date": past.isoformat()}, {"title": "Done one", "due_date": past.isoformat(),
                                                              "status": "DONE"},
        {"title": "Not yet", "due_date": future.isoformat()}])
    await automation.announce_overdue(bk)  # (a worker's own run may come first: either announces it)
    assert await automation.announce_overdue(bk) == 0  # remembered: announced once
    overdue = await bk.mongo.webhook_deliveries.find({"webhook_id": hook["id"]}).to_list(None)
    mine = [d["payload"]["subject"] for d in overdue if d["payload"]["subject"]["postmortem"]["id"] == pm["id"]]
    assert [s["title"] for s in mine] == ["Late one"] and mine[0]["id"] == pm["action_items"][0]["id"]


async def test_publication_recommendations_and_validation_are_announced_in_their_transactions(client, admin, editor,
                                                                                              bk, hooks, tokens):
    from tests.patterns.test_rest import pattern
    from tests.postmortems.test_publish_article import publish

    rc = receiver(hooks)
    hook = await hooks(rc.url, ["postmortem.published", "pattern.validated", "recommendation.generated"])
    inc = await new_incident(client, editor, severity="LOW")  # LOW: no automatic recommendations meanwhile
    pm = await create_pm(client, editor, inc, title=unique("Postmortem: hooked"), root_cause_analysis="A leak",
                         impact_assessment="Users", lessons_learned="Watch pools", action_items=[{"title": "Fix"}])
    await publish(client, editor, admin, pm["id"])
    p = await pattern(client, admin)
    for _ in range(2):  # validated twice: announced once
        r = await client.post(f"/api/knowledge/learning-patterns/{p['id']}/validate/", headers=admin,
                              json={"validation_notes": "seen it"})
        assert r.status_code == 200, r.text
    got = {(d["event"], d["subject_id"]): d async for d in bk.mongo.webhook_deliveries.find({"webhook_id": hook["id"]})}
    published = got[("postmortem.published", pm["id"])]["payload"]["subject"]
    assert published["status"] == "PUBLISHED" and published["published_at"] and published["incident"] == inc["id"]
    validated = [d for (e, s), d in got.items() if e == "pattern.validated"]
    assert len(validated) == 1 and validated[0]["payload"]["subject"]["validation_notes"] == "seen it"

    # recommendations: each new one stored is announced (as the generator stored it) — here a runbook for it
    from app.recommendations import service as recommendations
    from app.recommendations.models import RecommendationGenerateRequest
    from tests.recommendations.test_rest import sync

    r = await client.post("/api/knowledge/knowledge-articles/", headers=editor, json={
        "title": f"Runbook: {inc['title']}", "content": f"When {inc['title']} happens, raise the pool size.",
        "article_type": "RUNBOOK", "category": "Database", "status": "PUBLISHED"})
    assert r.status_code == 201, r.text
    await sync(bk)
    made = await recommendations.generate(bk, data=RecommendationGenerateRequest(
        incident_id=inc["id"], recommendation_types=["KNOWLEDGE_ARTICLE"]), user=tokens["admin_user"])
    announced = {d["subject_id"] async for d in bk.mongo.webhook_deliveries.find(
        {"webhook_id": hook["id"], "event": "recommendation.generated", "payload.subject.incident": inc["id"]})}
    assert made.recommendations and announced == {d["_id"] for d in made.recommendations}


async def test_an_inactive_webhook_gets_no_deliveries_and_cannot_be_tested(client, admin, editor, bk, hooks):
    rc = receiver(hooks)
    hook = await hooks(rc.url, ["incident.resolved"], active=False)
    inc = await new_incident(client, editor)
    await resolve(client, editor, inc)
    assert await bk.mongo.webhook_deliveries.count_documents({"webhook_id": hook["id"]}) == 0
    r = await client.post(f"{BASE}{hook['id']}/test/", headers=admin)
    assert r.status_code == 409 and r.json()["code"] == "WEBHOOK_INACTIVE"


async def test_graphql_manages_webhooks(client, admin, hooks, bk):
    rc = receiver(hooks)
    made = await gql(client, admin, """mutation($input: CreateWebhookInput!) { createWebhook(input: $input) {
        __typename ... on Webhook { id url events hasSecret } ... on ValidationError { code field } } }""",
                     input={"url": rc.url, "events": ["pattern.validated"], "secret": SECRET})
    hook = made["data"]["createWebhook"]
    assert hook["__typename"] == "Webhook" and hook["hasSecret"] is True and SECRET not in json.dumps(made)
    try:
        refused = await gql(client, admin, """mutation($input: CreateWebhookInput!) { createWebhook(input: $input) {
            __typename ... on ValidationError { code field } } }""",
                            input={"url": "http://169.254.169.254/", "events": ["pattern.validated"], "secret": SECRET})
        assert refused["data"]["createWebhook"] == {"__typename": "ValidationError", "code": "WEBHOOK_TARGET_REFUSED",
                                                     "field": "url"}
        changed = await gql(client, admin, """mutation($id: ID!) { updateWebhook(id: $id, input: {active: false}) {
            ... on Webhook { active } } }""", id=hook["id"])
        assert changed["data"]["updateWebhook"] == {"active": False}
        listed = await gql(client, admin, "{ webhooks(active: false, pageSize: 100) { results { id } } }")
        assert hook["id"] in [w["id"] for w in listed["data"]["webhooks"]["results"]]
    finally:
        gone = await gql(client, admin, 'mutation($id: ID!) { deleteWebhook(id: $id) { __typename } }', id=hook["id"])
        assert gone["data"]["deleteWebhook"]["__typename"] == "DeletedWebhook"


async def test_the_delivery_log_is_read_in_index_order(bk, hooks, client, admin):
    from app.listing import parse_list_params

    rc = receiver(hooks)
    hook = await hooks(rc.url, ["incident.resolved"])
    for ordering in (None, "created_at", "-created_at"):
        q = parse_list_params(service.DELIVERY_SPEC, {"ordering": ordering} if ordering else {})
        hint = service.DELIVERY_SPEC.index_for(q.sort, "webhook_id")
        flt = {"webhook_id": hook["id"], "data_classification": {"$in": Classification.INTERNAL.visible()}}
        plan = await bk.mongo.webhook_deliveries.find(flt, hint=hint).sort(q.sort).limit(20).explain()
        text = str(plan["queryPlanner"]["winningPlan"]).replace("SORT_MERGE", "")
        assert "SORT" not in text and "COLLSCAN" not in text, plan["queryPlanner"]["winningPlan"]
    assert (await client.get(f"{BASE}{hook['id']}/deliveries/", headers=admin, params={"ordering": "created_at"})
            ).status_code == 200


async def test_https_goes_to_the_checked_address_with_the_urls_host_as_sni_and_verifies_the_certificate(tmp_path):
    """The connection is made to the address resolved once, but TLS names the URL's host (SNI) and the
    certificate is checked against it: a self-signed certificate is a failed attempt, not a delivery."""
    import datetime as dt
    import socket
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    seen: list[str | None] = []
    server.sni_callback = lambda sock, server_name, ctx: seen.append(server_name)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve():
        conn, _ = listener.accept()
        try:
            server.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            pass
        finally:
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        out = await delivery.post(f"https://localhost:{listener.getsockname()[1]}/hook", b"{}", {},
                                  Settings(webhook_allow_loopback=True, webhook_timeout_seconds=3))
    finally:
        listener.close()
    assert seen == ["localhost"]  # the URL's host, not the address connected to
    assert out.response_code is None and "CERTIFICATE_VERIFY_FAILED" in out.error
