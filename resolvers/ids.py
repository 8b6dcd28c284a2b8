"""Opaque global IDs ("Type:uuid", base64url) that reveal no row numbers, and decoding with clear errors."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence

from errors import BadInput, NotFound


def encode(type_name: str, pk: uuid.UUID | str) -> str:
    hex_id = pk.hex if isinstance(pk, uuid.UUID) else uuid.UUID(pk).hex
    raw = f"{type_name}:{hex_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse(global_id: str) -> tuple[str, uuid.UUID] | None:
    """(type name, uuid) or None when the id is not one of ours."""
    try:
        padded = global_id + "=" * (-len(global_id) % 4)
        type_name, _, hex_id = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
        return type_name, uuid.UUID(hex=hex_id)
    except (binascii.Error, ValueError, UnicodeDecodeError, TypeError):
        return None


def decode(global_id: str, type_name: str, *, field: str = "id") -> uuid.UUID:
    """The uuid of an ID of ``type_name``. Malformed ids are BAD_USER_INPUT; an id of another type is NOT_FOUND."""
    parsed = parse(global_id)
    if parsed is None:
        raise BadInput(f"{field} is not a valid ID", field=field)
    if parsed[0] != type_name:
        raise NotFound(f"no {type_name} with this id")
    return parsed[1]


def decode_many(global_ids: Sequence[str] | None, type_name: str, *, field: str) -> list[uuid.UUID]:
    return [decode(g, type_name, field=field) for g in (global_ids or [])]
