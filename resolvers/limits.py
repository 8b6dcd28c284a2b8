"""Limits that keep the API standing: an hourly points budget per member or token, throttling of guesses, and of
sign-ups per client address.

Both count in fixed windows that start with the first hit and last ``window``. The counts live in a Store: in
this process (``MemoryStore``), or in Redis (``RedisStore``, when GROUPS_API_REDIS_URL is set) so that every
server process shares them. The store of the app is ``ctx.limit_store`` (server/graphql.py puts it there).
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from auth.viewer import Viewer
from errors import RateLimited
from resolvers.context import Context

log = logging.getLogger("groups_api.limits")

BUDGET_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class Policy:
    limit: int
    window: timedelta


# Sign-ups per client address: at most ``settings.sign_ups_per_hour`` in a window of this length.
SIGN_UP_WINDOW = timedelta(hours=1)

# Failed logIn / acceptInvitation attempts: per (account, client address) and per client address. Never per account
# alone: that would let anyone lock the owner of an account out by failing on purpose from somewhere else, while the
# right password from the owner's new address must still get through.
ACCOUNT_GUESSES = Policy(limit=10, window=timedelta(minutes=15))
ADDRESS_GUESSES = Policy(limit=50, window=timedelta(minutes=15))


@dataclass(frozen=True)
class Usage:
    """A window's count after a charge. ``allowed`` is False when the charge did not fit (and was not counted)."""

    limit: int
    used: int
    reset_at: datetime
    allowed: bool = True
    cost: int = 0

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    def retry_after(self, now: datetime) -> int:
        """Whole seconds until the window ends (at least 1)."""
        return max(1, math.ceil((self.reset_at - now).total_seconds()))


class StoreUnavailable(Exception):
    """The store cannot be reached (Redis down)."""


class Store(Protocol):
    async def charge(self, key: str, amount: int, *, limit: int, window: timedelta, now: datetime) -> Usage:
        """Atomically add ``amount`` to the window of ``key`` if the total stays within ``limit``.

        A window starts with the first hit and lasts ``window``; then the next hit starts a new one.
        ``amount=0`` only reads the count. Raises StoreUnavailable when the store cannot be reached.
        """

    async def clear(self, key: str) -> None: ...

    async def aclose(self) -> None: ...


# ------------------------------------------------------------------ stores


class MemoryStore:
    """Windows in this process's memory. Each charge is one synchronous step, hence atomic under asyncio."""

    # Forget ended windows once this many keys are held, so the map does not grow without bound.
    PRUNE_AT = 10_000

    def __init__(self) -> None:
        self._windows: dict[str, tuple[datetime, timedelta, int]] = {}

    async def charge(self, key: str, amount: int, *, limit: int, window: timedelta, now: datetime) -> Usage:
        start, _, used = self._windows.get(key, (now, window, 0))
        if now >= start + window or now < start:
            start, used = now, 0
        allowed = used + amount <= limit
        if allowed:
            used += amount
        if amount:
            self._windows[key] = (start, window, used)
        if len(self._windows) > self.PRUNE_AT:
            self._prune(now)
        return Usage(limit=limit, used=used, reset_at=start + window, allowed=allowed)

    def _prune(self, now: datetime) -> None:
        self._windows = {k: w for k, w in self._windows.items() if now < w[0] + w[1]}

    async def clear(self, key: str) -> None:
        self._windows.pop(key, None)

    async def aclose(self) -> None:
        self._windows.clear()


# KEYS[1]: the window's hash {start, used}; ARGV: now (ms), window (ms), limit, amount.
# Returns {allowed (0/1), used, start (ms)}. The window's time comes from the service clock, not Redis's.
_CHARGE_SCRIPT = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local amount = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'start', 'used')
local start = tonumber(state[1])
local used = tonumber(state[2]) or 0
if start == nil or now >= start + window or now < start then
  start = now
  used = 0
end
local allowed = 0
if used + amount <= limit then
  used = used + amount
  allowed = 1
end
if amount == 0 then
  return {allowed, used, start}
end
redis.call('HSET', KEYS[1], 'start', start, 'used', used)
redis.call('PEXPIRE', KEYS[1], math.max(start + window - now, 1))
return {allowed, used, start}
"""


class RedisStore:
    """Windows in Redis, shared by every server process; each charge is one atomic Lua script."""

    PREFIX = "groups-api:limits:"

    def __init__(self, url: str) -> None:
        from redis.asyncio import Redis

        self.redis = Redis.from_url(url)
        self._charge = self.redis.register_script(_CHARGE_SCRIPT)

    async def charge(self, key: str, amount: int, *, limit: int, window: timedelta, now: datetime) -> Usage:
        from redis.exceptions import RedisError

        window_ms = int(window.total_seconds() * 1000)
        try:
            allowed, used, start_ms = await self._charge(
                keys=[self.PREFIX + key], args=[_ms(now), window_ms, limit, amount]
            )
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        start = datetime.fromtimestamp(int(start_ms) / 1000, tz=UTC)
        return Usage(limit=limit, used=int(used), reset_at=start + window, allowed=bool(allowed))

    async def clear(self, key: str) -> None:
        await self.redis.delete(self.PREFIX + key)

    async def aclose(self) -> None:
        await self.redis.aclose()


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def store_for(redis_url: str | None) -> Store:
    """Redis when a URL is configured (budgets shared by processes), else this process's memory."""
    return RedisStore(redis_url) if redis_url else MemoryStore()


def store(ctx: Context) -> Store:
    if ctx.limit_store is None:
        raise LookupError("no rate-limit store: this context serves no request")
    return ctx.limit_store


# ------------------------------------------------------------------ budgets


def budget_key(viewer: Viewer | None, client_address: str | None = None) -> str:
    """A token has a budget of its own; a member's sessions share the member's; anonymous requests (sign-up,
    log-in, accepting an invitation, refreshing) share their client address's."""
    if viewer is None:
        return f"budget:address:{_digest(client_address or 'unknown')}"
    if viewer.api_token is not None:
        return f"budget:token:{viewer.api_token.id}"
    return f"budget:member:{viewer.member.id}"


async def charge_budget(ctx: Context, cost: int) -> Usage | None:
    """Take ``cost`` points from the caller's hourly budget, or refuse with RATE_LIMITED (nothing taken).

    Every document that reaches execution is charged, credential mutations included: to the viewer's budget when
    there is a viewer, else to the client address's (log-in guesses are throttled by ``check_guessing`` as well).
    When the store is down the request goes through uncharged (logged): budgets protect the service, and
    losing Redis should not take the whole API down with it. (Guessing checks, by contrast, fail closed.)
    """
    now = ctx.clock.now()
    try:
        usage = await store(ctx).charge(
            budget_key(ctx.viewer, ctx.client_address),
            cost,
            limit=ctx.settings.rate_limit_points,
            window=BUDGET_WINDOW,
            now=now,
        )
    except StoreUnavailable:
        log.exception("rate-limit store unavailable: request %s goes through uncharged", ctx.request_id)
        return None
    usage = replace(usage, cost=cost)
    ctx.state.rate_limit_usage = usage
    if not usage.allowed:
        raise RateLimited(
            f"this request costs {cost} points and {usage.remaining} of {usage.limit} remain until "
            f"{usage.reset_at.isoformat()}",
            retry_after=usage.retry_after(now),
        )
    return usage


def current_usage(ctx: Context) -> Usage | None:
    """The budget after this request's charge (what Query.rateLimit reports)."""
    return ctx.state.rate_limit_usage


# ------------------------------------------------------------------ sign-ups


async def charge_sign_up(ctx: Context) -> None:
    """Count a sign-up against the client address, or refuse it with RATE_LIMITED (and retryAfter) once the address
    has signed up ``settings.sign_ups_per_hour`` times in the window: each one costs an argon2 hash and creates a
    practice. Check and count are one atomic step, so sign-ups sent at the same moment cannot pass the limit.

    When the store is down, sign-ups go through uncounted (logged), as budgets do: losing Redis should not close
    the door to new practices. (Guessing checks, which protect passwords and tokens, fail closed.)
    """
    now = ctx.clock.now()
    try:
        usage = await store(ctx).charge(
            f"signup:address:{_digest(ctx.client_address or 'unknown')}",
            1,
            limit=ctx.settings.sign_ups_per_hour,
            window=SIGN_UP_WINDOW,
            now=now,
        )
    except StoreUnavailable:
        log.exception("rate-limit store unavailable: sign-up of request %s goes through uncounted", ctx.request_id)
        return
    if not usage.allowed:
        raise RateLimited("too many sign-ups from this address: try again later", retry_after=usage.retry_after(now))


# ------------------------------------------------------------------ guessing


def _guess_keys(ctx: Context, key: str) -> list[tuple[str, Policy]]:
    # Keys are hashed: emails and invitation tokens never reach the store in the clear.
    address = ctx.client_address or "unknown"
    keys = [(f"guess:account:{_digest(key + chr(0) + address)}", ACCOUNT_GUESSES)]
    if ctx.client_address:
        keys.append((f"guess:address:{_digest(ctx.client_address)}", ADDRESS_GUESSES))
    return keys


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def login_key(slug: str, email: str) -> str:
    """The guessing key of an account's password (log-in, and the password asked again by changePassword and
    transferOwnership), so every wrong password of an account counts together."""
    return f"login:{slug}:{email}"


async def check_guessing(ctx: Context, key: str) -> None:
    """Refuse with RATE_LIMITED when ``key`` (e.g. an account) from this client address, or the client address
    itself, has failed too often lately.

    Call it before checking a secret (password, invitation token), ``record_failure`` when the check fails, and
    ``record_success`` when it passes if the key's failures should be forgotten. Only failures count, so
    successful calls are never slowed. Check and count are two steps: guesses sent at the same moment can pass
    the limit by as many as arrive together, no more.
    """
    now = ctx.clock.now()
    for name, policy in _guess_keys(ctx, key):
        usage = await store(ctx).charge(name, 0, limit=policy.limit, window=policy.window, now=now)
        if usage.used >= policy.limit:
            raise RateLimited("too many failed attempts: try again later", retry_after=usage.retry_after(now))


async def record_failure(ctx: Context, key: str) -> None:
    """Count a failed attempt against ``key`` from this address, and against the address."""
    now = ctx.clock.now()
    for name, policy in _guess_keys(ctx, key):
        await store(ctx).charge(name, 1, limit=policy.limit, window=policy.window, now=now)


async def record_success(ctx: Context, key: str) -> None:
    """Forget the failures of ``key`` from this address (not those of the address, which may be guessing other
    accounts)."""
    await store(ctx).clear(_guess_keys(ctx, key)[0][0])
