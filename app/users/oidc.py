"""SSO: OpenID Connect ID tokens as bearer credentials (`Authorization: Bearer <JWT>`), checked with PyJWT.

A token is accepted when, for the provider whose `issuer` is its `iss` (IKL_OIDC_PROVIDERS):
- its header's `alg` is an asymmetric one (RS*, PS*, ES*, EdDSA) — `none` and every HMAC algorithm are
  refused before anything else, so a token "signed" with the provider's public key as an HMAC secret
  (key confusion) never reaches a key;
- its `kid` names a signing key of the provider's JWKS (a token without `kid` only when the JWKS has a
  single key), the key's type fits the algorithm and, when the key declares an `alg`, it is that one;
- the signature verifies with that key, and `exp`, `nbf`, `iat` hold within `oidc_leeway_seconds` (30),
  `iss` is the provider's and `aud` holds its audience; `exp`, `iss`, `aud` and `sub` are required.

JWKS: a `jwks_file` is read, a `jwks_url` fetched (httpx); either is kept `oidc_jwks_cache_seconds` (1 h). A
`kid` not in it loads it again — at most once per `oidc_jwks_refetch_seconds` (30) per provider, so a flood of
made-up key ids costs no more than that — which picks up a rotation. Keys that cannot be loaded at all are a
503 (`SSO_UNAVAILABLE`); a later failed refresh keeps the keys already known.

The user: the provider's users are found by (provider name, `sub`). On first sight one is created with the
username in `username_claim`, role and clearance from their claims (viewer and INTERNAL when absent or
unknown; a role claim of `admin` counts only with `oidc_admin_from_claim`), marked `sso_provider` — it has no
password and cannot sign in with one. The provider stays the source of truth: at each later sign-in a role
or clearance claim that is present and valid replaces the stored one (an absent one leaves it). A username
already taken by another account (a local one, another provider's) is refused, never taken over. A
deactivated user is refused whatever the token.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import jwt
from pymongo.errors import DuplicateKeyError

from app.activity.service import record_audit
from app.backends import Backends
from app.errors import Unavailable
from app.settings import OIDCProvider, Settings
from app.users import service as users
from app.users.models import Classification, Role, User, UserCreate

log = logging.getLogger(__name__)

# algorithm -> the key type (and, for EC, the curve) that signs with it
ALGORITHMS: dict[str, tuple[str, str | None]] = {
    **{f"RS{n}": ("RSA", None) for n in (256, 384, 512)},
    **{f"PS{n}": ("RSA", None) for n in (256, 384, 512)},
    "ES256": ("EC", "P-256"), "ES384": ("EC", "P-384"), "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", "Ed25519"),
}
FETCH_TIMEOUT_SECONDS = 5.0


class Refused(Exception):
    """A bearer token that does not sign in (a 401; the message says why, in general terms)."""


@dataclass
class _KeySet:
    keys: list[dict[str, Any]] = field(default_factory=list)
    loaded_at: float = float("-inf")   # monotonic
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


_KEYSETS: dict[str, _KeySet] = {}


def provider_for(settings: Settings, issuer: Any) -> OIDCProvider | None:
    return next((p for p in settings.oidc_providers if p.issuer == issuer), None)


async def _read_jwks(provider: OIDCProvider) -> list[dict[str, Any]]:
    if provider.jwks_file:
        text = await asyncio.to_thread(Path(provider.jwks_file).read_text)
    else:
        async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_SECONDS, follow_redirects=False) as client:
            response = await client.get(provider.jwks_url or "", headers={"Accept": "application/json"})
            response.raise_for_status()
            text = response.text
    data = json.loads(text)
    keys = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(keys, list):
        raise ValueError("the JWKS has no 'keys' list")
    # signing keys of an asymmetric type only: a symmetric ("oct") key is never a verification key here
    return [k for k in keys if isinstance(k, dict) and k.get("kty") in ("RSA", "EC", "OKP")
            and k.get("use", "sig") == "sig"]


def _unavailable(provider: OIDCProvider) -> Unavailable:
    return Unavailable(f"The keys of sign-in provider '{provider.name}' cannot be loaded; try again shortly",
                       code="SSO_UNAVAILABLE")


async def _load(provider: OIDCProvider, keyset: _KeySet) -> None:
    """Load the provider's keys; a failure keeps the keys already known (none known: 503)."""
    keyset.loaded_at = time.monotonic()  # a failing source too is asked again only after the delays
    try:
        keyset.keys = await _read_jwks(provider)
    except Exception as exc:  # noqa: BLE001 - the file or the endpoint: say which, keep what is known
        log.warning("OIDC provider keys not loaded", extra={"provider": provider.name, "error": str(exc)[:300]})
        if not keyset.keys:
            raise _unavailable(provider) from None


def _pick(keys: list[dict[str, Any]], kid: Any) -> dict[str, Any] | None:
    if kid is None:
        return keys[0] if len(keys) == 1 else None
    return next((k for k in keys if k.get("kid") == kid), None)


async def signing_key(settings: Settings, provider: OIDCProvider, kid: Any) -> dict[str, Any] | None:
    """The provider's JWK with this key id: from the cached JWKS, loaded again when it is older than
    `oidc_jwks_cache_seconds`, or when the key id is unknown (or nothing could be loaded) and the last load
    is older than `oidc_jwks_refetch_seconds`."""
    keyset = _KEYSETS.setdefault(provider.name, _KeySet())

    def due() -> bool:
        age = time.monotonic() - keyset.loaded_at
        return age >= settings.oidc_jwks_cache_seconds or (age >= settings.oidc_jwks_refetch_seconds and (
            not keyset.keys or _pick(keyset.keys, kid) is None))

    if due():
        async with keyset.lock:
            if due():
                await _load(provider, keyset)
    if not keyset.keys:
        raise _unavailable(provider)
    return _pick(keyset.keys, kid)


def forget_keys() -> None:
    """Forget every cached JWKS (tests; a changed configuration)."""
    _KEYSETS.clear()


async def verify(settings: Settings, token: str) -> tuple[OIDCProvider, dict[str, Any]]:
    """The provider and the verified claims of an ID token; Refused when it is not valid."""
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise Refused("Malformed bearer token.") from None
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        raise Refused("The bearer token's algorithm is not accepted.")
    provider = provider_for(settings, unverified.get("iss"))
    if provider is None:
        raise Refused("The bearer token's issuer is not a configured sign-in provider.")
    jwk = await signing_key(settings, provider, header.get("kid"))
    if jwk is None:
        raise Refused("The bearer token's signing key is unknown.")
    kty, curve = ALGORITHMS[alg]
    if jwk.get("kty") != kty or (curve is not None and jwk.get("crv") != curve) or jwk.get("alg", alg) != alg:
        raise Refused("The bearer token's algorithm does not match its key.")
    try:
        key = jwt.PyJWK(jwk, algorithm=alg).key
        claims = jwt.decode(token, key, algorithms=[alg], audience=provider.audience, issuer=provider.issuer,
                            leeway=settings.oidc_leeway_seconds,
                            options={"require": ["exp", "iss", "aud", "sub"]})
    except jwt.ExpiredSignatureError:
        raise Refused("The bearer token has expired.") from None
    except jwt.ImmatureSignatureError:
        raise Refused("The bearer token is not valid yet.") from None
    except jwt.PyJWTError:
        raise Refused("Invalid bearer token.") from None
    return provider, claims


def _strongest(value: Any, parse) -> Any:
    """A claim that is one value or a list of them: the highest-ranked value `parse` recognises."""
    found = [v for v in (parse(x) for x in (value if isinstance(value, list) else [value])) if v is not None]
    return max(found, key=lambda v: v.rank) if found else None


def claimed_role(settings: Settings, value: Any) -> Role | None:
    """The role a claim names (None: absent or unknown); `admin` only when the setting allows it."""
    def parse(x: Any) -> Role | None:
        try:
            role = Role(str(x).strip().lower())
        except ValueError:
            return None
        return None if role is Role.ADMIN and not settings.oidc_admin_from_claim else role

    return _strongest(value, parse)


def claimed_clearance(value: Any) -> Classification | None:
    def parse(x: Any) -> Classification | None:
        try:
            return Classification(str(x).strip().upper())
        except ValueError:
            return None

    return _strongest(value, parse)


async def user_for(bk: Backends, provider: OIDCProvider, claims: dict[str, Any]) -> User:
    """The user the provider's verified claims name: found by (provider, sub), created on first sight,
    role and clearance kept in step with the claims. Refused for a deactivated user or a taken username."""
    subject = str(claims["sub"])
    role = claimed_role(bk.settings, claims.get(provider.role_claim))
    clearance = claimed_clearance(claims.get(provider.clearance_claim))
    query = {"sso_provider": provider.name, "sso_subject": subject}
    doc = await bk.mongo.users.find_one(query)
    if doc is None:
        username = claims.get(provider.username_claim)
        try:
            data = UserCreate(username=username, role=role or Role.VIEWER,
                              clearance=clearance or Classification.INTERNAL)
        except Exception:  # noqa: BLE001 - a missing or unusable username claim
            raise Refused(f"The bearer token has no usable '{provider.username_claim}' claim.") from None
        doc = {"_id": str(uuid.uuid4()), **data.model_dump(mode="json"), "is_active": True,
               "created_at": datetime.now(timezone.utc), **query}
        try:
            await bk.mongo.users.insert_one(doc)
        except DuplicateKeyError:
            doc = await bk.mongo.users.find_one(query)  # created a moment ago by a request just like this one
            if doc is None:
                raise Refused(f"The username '{data.username}' belongs to another account.") from None
        else:
            user = users._to_user(doc)
            await record_audit(bk, action="auth.sso_user_created", user=user, subject_type="user",
                               subject_id=user.id, changes={"provider": provider.name, "role": user.role.value,
                                                            "clearance": user.clearance.value},
                               auth_method="sso")
            return user
    if not doc.get("is_active", True):
        raise Refused("This account is deactivated.")
    changes = {k: v.value for k, v in (("role", role), ("clearance", clearance)) if v is not None and doc.get(k) != v.value}
    if changes:
        await bk.mongo.users.update_one({"_id": doc["_id"]}, {"$set": changes})
        doc = {**doc, **changes}
        user = users._to_user(doc)
        await record_audit(bk, action="auth.sso_claims_applied", user=user, subject_type="user", subject_id=user.id,
                           changes={"provider": provider.name, **changes}, auth_method="sso")
    return users._to_user(doc)


def well_formed(token: str) -> bool:
    """Whether `token` is shaped like a signed JWT (three parts, a JSON header); anything else is refused
    without a lookup."""
    if token.count(".") != 2:
        return False
    try:
        jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        return False
    return True


def cache_key(token: str) -> str:
    return "bearer:" + hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


async def authenticate(bk: Backends, token: str) -> tuple[User, float]:
    """The user an SSO bearer token signs in, and the token's expiry (epoch seconds); Refused otherwise.
    Cached (by the token's hash) for a few seconds, never past its expiry."""
    provider, claims = await verify(bk.settings, token)
    read_at = users.lookup_started()
    user = await user_for(bk, provider, claims)
    expires_at = float(claims["exp"]) + bk.settings.oidc_leeway_seconds
    users.remember(cache_key(token), user, expires_at - time.time(), read_at=read_at)
    return user, expires_at


def credential(user_id: str, expires_at: float) -> users.Credential:
    """What a long-lived response re-checks for a request signed in by an SSO token: not expired, the user active."""
    async def recheck(bk: Backends) -> User | None:
        if time.time() >= expires_at:
            return None
        doc = await bk.mongo.users.find_one({"_id": user_id, "is_active": True})
        return users._to_user(doc) if doc is not None else None

    return users.Credential("sso", recheck)


def cached(token: str, leeway: float) -> tuple[User, float] | None:
    """The user of an SSO token verified in the last few seconds, and its expiry, with no I/O."""
    user = users.cached_user(key=cache_key(token))
    if user is None:
        return None
    try:
        exp = float(jwt.decode(token, options={"verify_signature": False})["exp"])
    except (jwt.PyJWTError, KeyError, TypeError, ValueError):
        return None
    return user, exp + leeway
