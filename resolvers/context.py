"""The one Context per request: the viewer, DataLoaders, the clock, the request id. Nothing reads globals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from strawberry.dataloader import DataLoader

from auth.tokens import JwtCodec
from auth.viewer import Viewer
from resolvers.clock import Clock

if TYPE_CHECKING:
    from server.settings import Settings


class Loaders:
    """Per-request DataLoaders, created on first use under a name (one batch function per name)."""

    def __init__(self) -> None:
        self._loaders: dict[str, DataLoader] = {}

    def get(self, name: str, batch: Callable[[Sequence[Hashable]], Awaitable[Sequence[Any]]]) -> DataLoader:
        loader = self._loaders.get(name)
        if loader is None:
            loader = self._loaders[name] = DataLoader(load_fn=batch)
        return loader


@dataclass
class Context:
    settings: Settings
    clock: Clock
    codec: JwtCodec
    request_id: str
    viewer: Viewer | None = None
    credential_error: str | None = None
    request: Any = None
    response: Any = None
    client_address: str | None = None
    loaders: Loaders = field(default_factory=Loaders)
    # Per-request state of cross-cutting concerns (audit buffer, query cost, ...), keyed by area.
    state: dict[str, Any] = field(default_factory=dict)
