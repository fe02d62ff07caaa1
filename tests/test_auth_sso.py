"""SSO: `Authorization: Bearer <JWT>` from the OpenID Connect provider the suite configures (tests/conftest.py:
IKL_OIDC_PROVIDERS, its JWKS written here). Valid tokens sign in over REST, GraphQL and WebSocket and create
the user on first sight; every kind of bad token is a 401; keys rotate; a JWKS URL is fetched, cached and
refetched at most once per delay for an unknown key id."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.server
import json
import threading
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from app.settings import OIDCProvider
from app.users import oidc
from tests.conftest import OIDC_AUDIENCE, OIDC_ISSUER, unique

ME = "/api/auth/me/"


def jwk_of(private, kid: str, **extra) -> dict:
    data = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key())) if isinstance(
        private, rsa.RSAPrivateKey) else json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    return {**data, "kid": kid, "use": "sig", **extra}


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
KEYS = [jwk_of(RSA_KEY, "rsa-1", alg="RS256"), jwk_of(EC_KEY, "ec-1")]


def write_jwks(stack, keys: list[dict]) -> None:
    (stack.root / "oidc_jwks.json").write_text(json.dumps({"keys": keys}))


@pytest.fixture(scope="module", autouse=True)
def jwks(stack):
    write_jwks(stack, KEYS)
    oidc.forget_keys()
    yield
    oidc.forget_keys()


def claims(**over) -> dict:
    now = int(time.time())
    name = unique("sso")
    out = {"iss": OIDC_ISSUER, "aud": OIDC_AUDIENCE, "sub": f"sub-{name}", "preferred_username": name, "iat": now,
           "nbf": now - 5, "exp": now + 600, "role": "editor", "clearance": "CONFIDENTIAL"}
    out.update(over)
    return {k: v for k, v in out.items() if v is not None}


def sign(payload: dict, *, key=RSA_KEY, alg: str = "RS256", kid: str | None = "rsa-1") -> str:
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid} if kid else None)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(payload: dict, alg, secret: bytes = b"") -> str:
    head = b64(json.dumps({"alg": alg, "typ": "JWT", "kid": "rsa-1"}).encode())
    body = b64(json.dumps(payload).encode())
    if alg == "none":
        return f"{head}.{body}."
    return f"{head}.{body}.{b64(hmac.new(secret, f'{head}.{body}'.encode(), hashlib.sha256).digest())}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def caller(app, contract):
    """A client from an address of its own (the failed-authentication limit counts per address)."""
    from tests.test_auth_session import browser

    async with browser(app, contract) as c:
        yield c


async def test_a_valid_token_signs_in_and_creates_the_user(app, bk, contract):
    payload = claims()
    async with caller(app, contract) as c:
        r = await c.get(ME, headers=bearer(sign(payload)))
        assert r.status_code == 200, r.text
        me = r.json()
        assert (me["username"], me["role"], me["clearance"], me["auth_method"], me["sso_provider"]) == \
            (payload["preferred_username"], "editor", "CONFIDENTIAL", "sso", "test-sso")
        stored = await bk.mongo.users.find_one({"_id": me["id"]})
        assert stored["sso_subject"] == payload["sub"] and "password_hash" not in stored
        # the same user on the next sight; writes need no CSRF token; GraphQL too
        again = sign({**payload, "iat": payload["iat"] + 1})
        assert (await c.get(ME, headers=bearer(again))).json()["id"] == me["id"]
        r = await c.post("/api/v1/incidents/", headers=bearer(again), json={"title": unique("sso"), "severity": "LOW"})
        assert r.status_code == 201, r.text
        r = await c.post("/graphql", headers=bearer(again), json={"query": "{ incidents(pageSize: 1) { totalCount } }"})
        assert r.status_code == 200 and "errors" not in r.json(), r.text
        # an SSO user has no password to sign in with
        r = await c.post("/api/auth/login/", json={"username": me["username"], "password": "anything at all"})
        assert r.status_code == 401
    assert await bk.mongo.audit_log.find_one({"action": "auth.sso_user_created", "subject_id": me["id"]})


async def test_an_ec_key_signs_too(app, contract):
    async with caller(app, contract) as c:
        r = await c.get(ME, headers=bearer(sign(claims(), key=EC_KEY, alg="ES256", kid="ec-1")))
        assert r.status_code == 200, r.text


async def test_every_bad_token_is_a_401(app, contract):
    now = int(time.time())
    good = sign(claims())
    head, _, sig = good.split(".")
    public = json.dumps(KEYS[0]).encode()
    pem = RSA_KEY.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    bad = {
        "expired": sign(claims(exp=now - 120, iat=now - 900)),
        "not yet valid": sign(claims(nbf=now + 600)),
        "issued in the future": sign(claims(iat=now + 600)),
        "signed by another key": sign(claims(), key=OTHER_KEY),
        "wrong issuer": sign(claims(iss="https://evil.example")),
        "wrong audience": sign(claims(aud="another-service")),
        "no subject": sign(claims(sub=None)),
        "no expiry": sign(claims(exp=None)),
        "no username": sign(claims(preferred_username=None)),
        "alg none": forged(claims(), "none"),
        "alg not a name": forged(claims(), ["RS256"], b"x"),
        "HS256 with the JWK as secret": forged(claims(), "HS256", public),
        "HS256 with the PEM as secret": forged(claims(), "HS256", pem),
        "unknown key id": sign(claims(), kid="no-such-key"),
        "no key id (the JWKS has two keys)": sign(claims(), kid=None),
        "PS256 on a key declared RS256": sign(claims(), alg="PS256"),
        "RS256 header on the EC key": sign(claims(), kid="ec-1"),
        "tampered payload": f"{head}.{b64(json.dumps(claims(role='admin')).encode())}.{sig}",
        "tampered signature": f"{head}.{good.split('.')[1]}.{sig[:-4]}AAAA",
        "not a JWT": "not-a-jwt",
    }
    async with caller(app, contract) as c:
        for what, token in bad.items():
            r = await c.get(ME, headers=bearer(token))
            assert r.status_code == 401, (what, r.status_code, r.text)
            assert r.json()["code"] == "NOT_AUTHENTICATED" and r.headers["www-authenticate"].startswith("Bearer"), what
        r = await c.post("/graphql", headers=bearer(bad["expired"]), json={"query": "{ __typename }"})
        assert r.status_code == 401 and r.json()["errors"][0]["extensions"]["code"] == "NOT_AUTHENTICATED"


async def test_roles_and_clearances_from_claims(app, bk, contract):
    async with caller(app, contract) as c:
        async def me(**over) -> dict:
            r = await c.get(ME, headers=bearer(sign(claims(**over))))
            assert r.status_code == 200, r.text
            return r.json()

        plain = await me(role=None, clearance=None)
        assert (plain["role"], plain["clearance"]) == ("viewer", "INTERNAL")  # the defaults
        assert (await me(role="admin"))["role"] == "viewer"  # never admin from a claim ...
        assert (await me(role=["viewer", "editor"], clearance="nonsense"))["role"] == "editor"
        bk.settings.oidc_admin_from_claim = True
        try:
            assert (await me(role="ADMIN"))["role"] == "admin"  # ... unless the setting says so
        finally:
            bk.settings.oidc_admin_from_claim = False
        # later sights: a present, valid claim replaces the stored value; an absent one keeps it
        payload = claims(role="editor", clearance="RESTRICTED")
        first = (await c.get(ME, headers=bearer(sign(payload)))).json()
        later = {**payload, "role": "viewer", "iat": payload["iat"] + 1}
        later.pop("clearance")
        after = (await c.get(ME, headers=bearer(sign(later)))).json()
        assert (after["id"], after["role"], after["clearance"]) == (first["id"], "viewer", "RESTRICTED")


async def test_a_taken_username_is_never_taken_over_and_a_deactivated_user_is_refused(app, bk, admin, contract):
    from app.users import signin

    async with caller(app, contract) as c:
        local = (await c.get(ME, headers=admin)).json()["username"]  # the suite's admin, a local user
        r = await c.get(ME, headers=bearer(sign(claims(preferred_username=local, role="admin"))))
        assert r.status_code == 401 and "another account" in r.json()["error"]
        payload = claims()
        uid = (await c.get(ME, headers=bearer(sign(payload)))).json()["id"]
        await bk.mongo.users.update_one({"_id": uid}, {"$set": {"is_active": False}})
        await signin.sign_out_everywhere(bk, user_id=uid)
        r = await c.get(ME, headers=bearer(sign({**payload, "iat": payload["iat"] + 2})))
        assert r.status_code == 401 and "deactivated" in r.json()["error"]


async def test_keys_rotate_and_unknown_key_ids_refetch_at_most_once_per_delay(app, bk, stack, contract, monkeypatch):
    reads = []
    real = oidc._read_jwks

    async def counted(provider):
        reads.append(provider.name)
        return await real(provider)

    monkeypatch.setattr(oidc, "_read_jwks", counted)
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    saved = bk.settings.oidc_jwks_refetch_seconds, bk.settings.oidc_jwks_cache_seconds
    try:
        async with caller(app, contract) as c:
            assert (await c.get(ME, headers=bearer(sign(claims())))).status_code == 200
            write_jwks(stack, [*KEYS, jwk_of(new_key, "rsa-2")])  # the provider publishes a new key
            bk.settings.oidc_jwks_refetch_seconds = 3600
            reads.clear()
            for _ in range(5):  # a flood of unknown key ids: no reload within the delay
                r = await c.get(ME, headers=bearer(sign(claims(), key=new_key, kid="rsa-2")))
                assert r.status_code == 401
            assert reads == []
            bk.settings.oidc_jwks_refetch_seconds = 0  # the delay has passed: one reload picks it up
            r = await c.get(ME, headers=bearer(sign(claims(), key=new_key, kid="rsa-2")))
            assert r.status_code == 200 and reads == ["test-sso"], (r.text, reads)
            write_jwks(stack, [jwk_of(new_key, "rsa-2")])  # the old key retired: gone at the next reload
            assert (await c.get(ME, headers=bearer(sign(claims())))).status_code == 200  # still cached
            bk.settings.oidc_jwks_cache_seconds = 0
            assert (await c.get(ME, headers=bearer(sign(claims())))).status_code == 401
    finally:
        bk.settings.oidc_jwks_refetch_seconds, bk.settings.oidc_jwks_cache_seconds = saved
        write_jwks(stack, KEYS)
        oidc.forget_keys()


class _JWKSHandler(http.server.BaseHTTPRequestHandler):
    body = b"{}"
    hits = 0

    def do_GET(self):  # noqa: N802 - the standard library's name
        type(self).hits += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


async def test_a_jwks_url_is_fetched_and_cached(app, bk, contract):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _JWKSHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _JWKSHandler.body = json.dumps({"keys": [jwk_of(OTHER_KEY, "url-1")]}).encode()
    _JWKSHandler.hits = 0
    issuer = "https://sso-by-url.test.invalid"
    provider = OIDCProvider(name="by-url", issuer=issuer, audience=[OIDC_AUDIENCE, "other"],
                            jwks_url=f"http://127.0.0.1:{server.server_address[1]}/jwks",
                            username_claim="email", role_claim="groups")
    saved = list(bk.settings.oidc_providers)
    bk.settings.oidc_providers = [*saved, provider]
    try:
        async with caller(app, contract) as c:
            for i in range(3):
                token = sign(claims(iss=issuer, email=f"{unique('url')}@example.com", groups=["editor"]),
                             key=OTHER_KEY, kid="url-1")
                r = await c.get(ME, headers=bearer(token))
                assert r.status_code == 200 and r.json()["role"] == "editor", r.text
            assert _JWKSHandler.hits == 1  # fetched once, then cached
            _JWKSHandler.body = b"not json"
            bk.settings.oidc_jwks_cache_seconds, cache = 0, bk.settings.oidc_jwks_cache_seconds
            try:  # a failed refresh keeps the keys already known
                token = sign(claims(iss=issuer, email=f"{unique('url')}@example.com"), key=OTHER_KEY, kid="url-1")
                assert (await c.get(ME, headers=bearer(token))).status_code == 200
                assert _JWKSHandler.hits == 2
            finally:
                bk.settings.oidc_jwks_cache_seconds = cache
            oidc.forget_keys()  # nothing known and nothing to load: the provider is unavailable (503)
            token = sign(claims(iss=issuer, email=f"{unique('url')}@example.com"), key=OTHER_KEY, kid="url-1")
            r = await c.get(ME, headers=bearer(token))
            assert r.status_code == 503 and r.json()["code"] == "SSO_UNAVAILABLE"
    finally:
        bk.settings.oidc_providers = saved
        server.shutdown()
        oidc.forget_keys()


async def test_a_bearer_token_opens_a_graphql_websocket(live_api):
    from tests.test_graphql_ws import closed, opened, recv, send

    async with opened(live_api) as ws:
        await send(ws, {"type": "connection_init", "payload": {"Authorization": f"Bearer {sign(claims())}"}})
        assert await recv(ws) == {"type": "connection_ack"}
        await send(ws, {"type": "subscribe", "id": "1", "payload": {"query": "{ incidents(pageSize: 1) { totalCount } }"}})
        assert (await recv(ws))["type"] == "next"
    async with opened(live_api) as ws:
        await send(ws, {"type": "connection_init", "payload": {"Authorization": f"Bearer {sign(claims(), key=OTHER_KEY)}"}})
        assert (await closed(ws))[0] == 4403
