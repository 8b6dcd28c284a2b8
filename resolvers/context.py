"""The one Context per request: the viewer, DataLoaders, the clock, the request id. Nothing reads globals.

The rules know no web framework: what they need of the settings is ``RuleSettings`` (server/settings.Settings
provides it), what should happen once the answer is sent goes on ``after_response`` and the headers the answer
should carry on ``response_headers``; server/graphql.py runs the one and sets the other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from strawberry.dataloader import DataLoader

from auth.tokens import JwtCodec
from auth.viewer import Viewer
from errors import Unauthenticated
from resolvers.clock import Clock

if TYPE_CHECKING:
    from resolvers.audit import PendingEvent
    from resolvers.limits import Store, Usage


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class InPractice(Protocol):
    """A row that belongs to one practice."""

    @property
    def practice_id(self) -> Any: ...


R = TypeVar("R", bound=InPractice)


class SharedLoader(DataLoader[K, V]):
    """A DataLoader whose shared results survive the cancellation of one caller.

    graphql-core cancels the sibling fields of a field whose error nulls their parent (a null in a non-null field
    of a list item, say). A task cancelled while it awaits a future cancels that future; with a plain DataLoader
    that is the one cached future every field asking for the same key awaits, so those fields then receive
    CancelledError, which is no field error: it escapes the execution and the request never completes. Each caller
    here awaits its own shield of the shared future instead.
    """

    def load(self, key: K) -> Awaitable[V]:
        return asyncio.shield(super().load(key))

    def load_many(self, keys: Iterable[K]) -> Awaitable[list[V]]:
        """One shield around the gathered keys (not one per key: a page's clinicians are dozens of keys)."""
        return asyncio.shield(asyncio.gather(*map(super().load, keys)))


class Loaders:
    """Per-request DataLoaders, created on first use under a name (one batch function per name)."""

    def __init__(self) -> None:
        self._loaders: dict[str, DataLoader[Any, Any]] = {}

    def get(self, name: str, batch: Callable[[list[K]], Awaitable[Sequence[V | BaseException]]]) -> DataLoader[K, V]:
        loader = self._loaders.get(name)
        if loader is None:
            loader = self._loaders[name] = SharedLoader(load_fn=batch)
        return loader


@dataclass
class BrowserSession:
    """Cookie sessions for one request, without the web framework: the HTTP layer (server/graphql.py) says what
    the request brought, the rules read the cookie's token and hand over the token to keep, and the HTTP layer then
    sets or clears the cookie.

    - ``cookie_mode``: the request's ``Origin`` is in GROUPS_API_CORS_ORIGINS. Credential mutations then answer the
      refresh token in an httpOnly cookie only (``AuthPayload.refreshToken`` null), and refreshSession/logOut
      without a token read ``cookie_token``.
    - ``cookie_refused``: the request carries the session cookie or an ``Origin`` outside the list: refreshSession
      and logOut without a token are FORBIDDEN (the cookie is read for the listed origins only: CSRF).
    """

    cookie_mode: bool = False
    cookie_token: str | None = None
    cookie_refused: bool = False
    # Set by the rules: the refresh token to keep in the cookie and when its session ends; or clear the cookie.
    issued: tuple[str, datetime | None] | None = None
    cleared: bool = False

    def hand_over(self, refresh_token: str, session_expires_at: datetime | None) -> str | None:
        """The refresh token for the answer's body: None when it travels in the cookie instead."""
        if not self.cookie_mode:
            return refresh_token
        self.issued, self.cleared = (refresh_token, session_expires_at), False
        return None

    def clear(self) -> None:
        """End the cookie (log-out, or a cookie whose session is gone). Only browsers on a listed origin get one."""
        if self.cookie_mode:
            self.issued, self.cleared = None, True


class RuleSettings(Protocol):
    """The settings the rules read (server/settings.Settings has them, and more)."""

    @property
    def production(self) -> bool: ...
    @property
    def jwt_secret(self) -> str | None: ...
    @property
    def jwt_previous_secrets(self) -> tuple[str, ...]: ...
    @property
    def access_token_ttl(self) -> timedelta: ...
    @property
    def refresh_token_ttl(self) -> timedelta: ...
    @property
    def session_max_age(self) -> timedelta: ...
    @property
    def trial_days(self) -> int: ...
    @property
    def invitation_ttl(self) -> timedelta: ...
    @property
    def smtp_url(self) -> str | None: ...
    @property
    def mail_from(self) -> str: ...
    @property
    def rate_limit_points(self) -> int: ...
    @property
    def sign_ups_per_hour(self) -> int: ...
    @property
    def app_base_url(self) -> str: ...


Job = Callable[[], Awaitable[None]]


@dataclass
class RequestState:
    """What the areas keep for the rest of one request (mutable, unlike the Context that holds it)."""

    # resolvers/limits: this request's points budget once charged.
    rate_limit_usage: Usage | None = None
    # resolvers/audit: events recorded once the operation's transaction has committed, and those already deferred.
    audit_deferred: list[PendingEvent] = field(default_factory=list)
    audit_deferred_once: set[tuple[str, str | None]] = field(default_factory=set)
    # resolvers/outbox and resolvers/webhooks: one delivery pass per request, after the response.
    outbox_scheduled: bool = False
    webhooks_queued: list[Any] = field(default_factory=list)
    webhooks_scheduled: bool = False


@dataclass(frozen=True)
class Context:
    """Frozen: the viewer never changes inside a request, whatever a credential mutation does (its payload shows
    the member it signed in through ``schema.members.Member.seen_by``)."""

    settings: RuleSettings
    clock: Clock
    codec: JwtCodec
    request_id: str
    viewer: Viewer | None = None
    credential_error: str | None = None
    client_address: str | None = None
    browser: BrowserSession = field(default_factory=BrowserSession)
    loaders: Loaders = field(default_factory=Loaders)
    # The rate-limit counters of the app (resolvers/limits.Store), None outside a served request.
    limit_store: Store | None = None
    state: RequestState = field(default_factory=RequestState)
    # Run in order once the answer is sent (server/graphql.py); None where no answer follows (jobs, statement PDFs):
    # then there is nothing to defer to (``defer`` says so).
    after_response: list[Job] | None = None
    # Headers for the answer (rate-limit counters), set on it by server/graphql.py.
    response_headers: dict[str, str] = field(default_factory=dict)

    def defer(self, job: Job) -> bool:
        """Run ``job`` once the answer is sent; False where no answer follows."""
        if self.after_response is None:
            return False
        self.after_response.append(job)
        return True

    def own(self, row: R | None) -> R | None:
        """``row`` when it belongs to the viewer's practice, else None.

        Every ``get_*`` / ``require_*`` helper returns its row through this, whether the row came from a query or
        from a request's loader: a row of another practice never leaves a rule, whatever a cache holds.
        """
        if row is None or self.viewer is None or row.practice_id != self.viewer.practice.id:
            return None
        return row

    def require_viewer(self) -> Viewer:
        """The caller, for rules that run behind a guard (UNAUTHENTICATED, should there be none)."""
        if self.viewer is None:
            raise Unauthenticated(self.credential_error or "authentication required")
        return self.viewer
