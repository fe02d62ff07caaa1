"""Passwords: argon2id hashes (argon2-cffi, its RFC 9106 low-memory profile), never the password itself.

Only people sign in with a password: service accounts and users created by SSO have none and are
refused like a wrong password. Setting a password ends every session of the user but the one that set it."""

from __future__ import annotations

import asyncio
import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from app.errors import ValidationFailed

MIN_LENGTH = 8
MAX_LENGTH = 1024  # hashing cost does not grow with length, but nobody needs more


@functools.cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """A hash nobody's password matches: checked when the user does not exist, so that an unknown username
    takes as long to refuse as a wrong password."""
    return _hasher().hash("not a password: an unknown user is refused as slowly as a wrong password")


def check_strength(password: str) -> None:
    """400 unless the password is long enough (and not absurdly long)."""
    if len(password) < MIN_LENGTH:
        raise ValidationFailed(f"The password must have at least {MIN_LENGTH} characters",
                               {"field": "password", "min_length": MIN_LENGTH}, code="PASSWORD_TOO_SHORT")
    if len(password) > MAX_LENGTH:
        raise ValidationFailed(f"The password must have at most {MAX_LENGTH} characters",
                               {"field": "password", "max_length": MAX_LENGTH}, code="PASSWORD_TOO_LONG")


async def hash_password(password: str) -> str:
    """The argon2id hash of a password (in a thread: hashing takes tens of milliseconds on purpose)."""
    return await asyncio.to_thread(_hasher().hash, password)


def _verify(stored: str | None, password: str) -> bool:
    try:
        return _hasher().verify(stored or _dummy_hash(), password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password(stored: str | None, password: str) -> bool:
    """Whether the password matches the stored hash; with no hash (unknown user, no password set) a dummy
    one is checked, so every refusal costs the same."""
    return await asyncio.to_thread(_verify, stored, password)


def needs_rehash(stored: str) -> bool:
    """Whether a hash was made with weaker parameters than today's (rehashed at the next sign-in)."""
    try:
        return _hasher().check_needs_rehash(stored)
    except InvalidHashError:
        return True
