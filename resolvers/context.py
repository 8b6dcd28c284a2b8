"""The one Context per request: the viewer, DataLoaders, the clock, the request id. Nothing reads globals."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from strawberry.dataloader import DataLoader

from auth.tokens import JwtCodec
from auth.viewer import Viewer
from errors import Unauthenticated
from resolvers.clock import Clock

if TYPE_CHECKING:
    from server.settings import Settings


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


@dataclass(frozen=True)
class Context:
    """Frozen: the viewer never changes inside a request, whatever a credential mutation does (its payload shows
    the member it signed in through ``schema.members.Member.seen_by``)."""

    settings: Settings
    clock: Clock
    codec: JwtCodec
    request_id: str
    viewer: Viewer | None = None
    credential_error: str | None = None
    request: Any = None
    response: Any = None
    client_address: str | None = None
    browser: BrowserSession = field(default_factory=BrowserSession)
    loaders: Loaders = field(default_factory=Loaders)
    # Per-request state of cross-cutting concerns (audit buffer, query cost, ...), keyed by area.
    state: dict[str, Any] = field(default_factory=dict)

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
