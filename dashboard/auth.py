"""Who is signed in: password hashes, web sessions in Redis, CSRF tokens and the same-origin check.

Password hashes are `scrypt$n$r$p$salt_b64$hash_b64` (hashlib.scrypt, a random 16-byte salt),
written into the team's TOML file by `wenzhen team hash-password`.

Sessions (prefix as the store's, default `wz:`):
  {p}web:{sid}          the session JSON: member id (None before login), CSRF token, flash messages
  {p}web:fail:{member}  failed password attempts (counted for a quarter of an hour)

The session id is random, kept only in an HttpOnly, SameSite=Strict cookie; a signed-in session
lives 12 hours, an anonymous one (the login form's CSRF token) one hour. Logging in always starts
a new session id; logging out deletes the session.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field
from redis.asyncio import Redis

from dialog.session import utcnow

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_MAX_N = 2**20
_MAXMEM = 256 * 1024 * 1024

SESSION_COOKIE = "wz_session"
SESSION_SECONDS = 12 * 3600
ANONYMOUS_SECONDS = 3600
FAILURES_ALLOWED = 10
FAILURE_WINDOW_SECONDS = 15 * 60


# ---- password hashes --------------------------------------------------------------------------


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """`scrypt$n$r$p$salt$hash` for the TOML file (salt and hash in base64)."""
    if not password:
        raise ValueError("the password is empty")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=32)
    return "$".join(["scrypt", str(n), str(r), str(p), _b64(salt), _b64(digest)])


def verify_password(password: str, encoded: str | None) -> bool:
    """Constant-time comparison against a stored hash; False for a missing or malformed one
    (which still costs one scrypt run, so that the answer takes as long either way)."""
    parsed = _parse(encoded) if encoded else None
    if parsed is None:
        _burn(password)
        return False
    n, r, p, salt, expected = parsed
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=len(expected))
    return hmac.compare_digest(digest, expected)


def is_password_hash(encoded: str) -> bool:
    return _parse(encoded) is not None


def _parse(encoded: str) -> tuple[int, int, int, bytes, bytes] | None:
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        expected = base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        return None
    if not (1 < n <= _MAX_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
        return None
    if len(salt) < 8 or not 16 <= len(expected) <= 64:
        return None
    return n, r, p, salt, expected


def _burn(password: str) -> None:
    hashlib.scrypt(password.encode(), salt=b"wenzhen-no-such-", n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# ---- sessions ----------------------------------------------------------------------------------


class Flash(BaseModel):
    kind: Literal["ok", "error"]
    text: str


class WebSession(BaseModel):
    sid: str = Field(exclude=True, default="")
    member: str | None = None
    csrf: str = Field(default_factory=lambda: secrets.token_urlsafe(32))
    created: datetime = Field(default_factory=utcnow)
    flash: list[Flash] = Field(default_factory=list)


class Sessions:
    """Web sessions in Redis."""

    def __init__(self, redis: Redis, *, prefix: str = "wz:") -> None:
        self.redis = redis
        self.prefix = prefix

    def _key(self, *parts: str) -> str:
        return self.prefix + "web:" + ":".join(parts)

    async def create(self, member: str | None) -> WebSession:
        session = WebSession(sid=secrets.token_urlsafe(32), member=member)
        ttl = SESSION_SECONDS if member else ANONYMOUS_SECONDS
        await self.redis.set(self._key(session.sid), session.model_dump_json(), ex=ttl)
        return session

    async def load(self, sid: str | None) -> WebSession | None:
        if not sid or len(sid) > 128:
            return None
        raw = await self.redis.get(self._key(sid))
        if not raw:
            return None
        session = WebSession.model_validate_json(raw)
        session.sid = sid
        return session

    async def save(self, session: WebSession) -> None:
        """Write back (flash messages); the session keeps its expiry."""
        await self.redis.set(self._key(session.sid), session.model_dump_json(), keepttl=True, xx=True)

    async def delete(self, sid: str) -> None:
        await self.redis.delete(self._key(sid))

    async def failures(self, member_id: str) -> int:
        raw = await self.redis.get(self._key("fail", member_id))
        return int(raw) if raw else 0

    async def failed(self, member_id: str) -> None:
        key = self._key("fail", member_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, FAILURE_WINDOW_SECONDS)
            await pipe.execute()

    async def succeeded(self, member_id: str) -> None:
        await self.redis.delete(self._key("fail", member_id))


def csrf_matches(session: WebSession | None, submitted: object) -> bool:
    if session is None or not isinstance(submitted, str) or not submitted:
        return False
    return hmac.compare_digest(session.csrf.encode(), submitted.encode())


def same_origin(origin: str | None, referer: str | None, allowed_hosts: set[str]) -> bool:
    """The request comes from one of our own pages: its Origin (or, lacking one, its Referer)
    names an allowed host[:port]. A POST with neither is refused."""
    source = origin if origin and origin != "null" else referer
    if not source:
        return False
    parts = urlsplit(source)
    return parts.scheme in ("http", "https") and parts.netloc.lower() in allowed_hosts
