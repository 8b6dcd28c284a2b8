"""Trusted documents (persisted queries): the GraphQL documents our own clients send, known by their sha256.

``GROUPS_API_TRUSTED_DOCUMENTS`` names manifests in either of the two formats client tools write:

- GraphQL Code Generator's client preset (``persisted-documents.json``): ``{"<sha256 hex>": "<document>", ...}``
- Apollo's persisted query manifest (``@apollo/generate-persisted-query-manifest``, Apollo Kotlin, Apollo iOS):
  ``{"format": "apollo-persisted-query-manifest", "version": 1,
  "operations": [{"id": "<sha256 hex>", "name": ..., "type": ..., "body": "<document>"}, ...]}``

At start-up every document's id is checked against the sha256 of its text, and every document is parsed, validated
against the schema (with the server's own validation rules and token limit) and costed; any failure refuses to
start with a ``ConfigurationError`` naming the file and the id. A request then names a document by
``"documentId": "sha256:<hex>"`` (or the bare hex) or by Apollo's ``extensions.persistedQuery.sha256Hash``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from graphql import GraphQLError, GraphQLSchema, OperationDefinitionNode, parse, specified_rules, validate
from graphql.validation import NoSchemaIntrospectionCustomRule

from server.settings import ConfigurationError

log = logging.getLogger("groups_api.trusted_documents")

APOLLO_FORMAT = "apollo-persisted-query-manifest"
PREFIX = "sha256:"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def document_hash(text: str) -> str:
    """The id of a document: the sha256 of its exact text (UTF-8), in lower-case hex, as both client tools write it."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def parse_document_id(value: str) -> str | None:
    """``sha256:<hex>`` or the bare hex -> the hex; anything else names no document we could hold (None)."""
    hex_id = value.removeprefix(PREFIX).lower()
    return hex_id if _SHA256_HEX.fullmatch(hex_id) else None


@dataclass(frozen=True)
class TrustedDocument:
    id: str  # sha256 hex of ``text``
    text: str
    operation_names: tuple[str, ...]
    # Points the document costs with its default page sizes (schema/limits.query_cost), worked out at start-up.
    cost: int
    source: str


class TrustedDocuments:
    """The loaded manifests: documents by id (and so by the hash of their text)."""

    def __init__(self, documents: Iterable[TrustedDocument] = ()) -> None:
        self._by_id = {document.id: document for document in documents}

    def __len__(self) -> int:
        return len(self._by_id)

    def __bool__(self) -> bool:
        return bool(self._by_id)

    def __iter__(self):
        return iter(self._by_id.values())

    def get(self, document_id: str) -> TrustedDocument | None:
        return self._by_id.get(document_id)

    def matching(self, text: str) -> TrustedDocument | None:
        """The trusted document whose text this is, if any (a request that sends the text counts as the document)."""
        if not self._by_id:
            return None
        return self._by_id.get(document_hash(text))

    @property
    def operation_names(self) -> frozenset[str]:
        return frozenset(name for document in self for name in document.operation_names)

    @classmethod
    def load(
        cls, paths: Iterable[str | Path], schema: GraphQLSchema, *, introspection: bool = True
    ) -> TrustedDocuments:
        """Read, check, parse, validate and cost every document of every manifest; ConfigurationError on the first
        problem (the server must not start with a manifest that does not match what it serves)."""
        documents: dict[str, TrustedDocument] = {}
        for path in paths:
            for document_id, text in read_manifest(Path(path)):
                if document_id in documents:
                    continue  # the same id in two manifests is the same text: its hash was checked
                documents[document_id] = _checked(document_id, text, str(path), schema, introspection)
        loaded = cls(documents.values())
        if loaded:
            log.info("loaded %d trusted documents", len(loaded), extra={"operations": sorted(loaded.operation_names)})
        return loaded


def read_manifest(path: Path) -> list[tuple[str, str]]:
    """(id, text) of every document in a manifest of either format, each id checked against its text's sha256."""
    try:
        manifest = orjson.loads(path.read_bytes())
    except OSError as error:
        raise ConfigurationError(
            f"GROUPS_API_TRUSTED_DOCUMENTS: cannot read {path}: {error.strerror or error}"
        ) from None
    except orjson.JSONDecodeError as error:
        raise ConfigurationError(f"GROUPS_API_TRUSTED_DOCUMENTS: {path} is not JSON: {error}") from None
    if not isinstance(manifest, dict):
        raise ConfigurationError(f"{path}: a trusted documents manifest is a JSON object")
    if "format" in manifest or "operations" in manifest:
        entries = _apollo_entries(path, manifest)
    else:
        entries = list(manifest.items())
    checked = []
    for document_id, text in entries:
        if not isinstance(document_id, str) or not isinstance(text, str):
            raise ConfigurationError(f"{path}: every id and document must be a string (id {document_id!r})")
        # GraphQL Code Generator's client preset (v5 and later) writes its keys as "sha256:<hex>", older ones bare.
        document_id = document_id.removeprefix(PREFIX)
        if document_hash(text) != document_id:
            raise ConfigurationError(
                f"{path}: trusted document {document_id!r} does not match its text (its sha256 is "
                f"{document_hash(text)}): regenerate the manifest"
            )
        checked.append((document_id, text))
    return checked


def _apollo_entries(path: Path, manifest: Mapping[str, Any]) -> list[tuple[str, str]]:
    if manifest.get("format") != APOLLO_FORMAT or manifest.get("version") != 1:
        raise ConfigurationError(
            f"{path}: unknown manifest format {manifest.get('format')!r} version {manifest.get('version')!r} "
            f"(expected {APOLLO_FORMAT!r} version 1, or GraphQL Code Generator's {{id: document}} object)"
        )
    operations = manifest.get("operations")
    if not isinstance(operations, list) or not all(isinstance(o, dict) for o in operations):
        raise ConfigurationError(f"{path}: 'operations' must be a list of objects")
    return [(operation.get("id"), operation.get("body")) for operation in operations]


def _checked(document_id: str, text: str, source: str, schema: GraphQLSchema, introspection: bool) -> TrustedDocument:
    # The request path's own limits and rules: a trusted document passes whatever a request sending its text passes.
    from schema import MAX_TOKENS, VALIDATION_RULES
    from schema.limits import MAX_QUERY_COST, query_cost

    def refuse(problem: str) -> ConfigurationError:
        return ConfigurationError(f"{source}: trusted document {document_id}: {problem}")

    try:
        document = parse(text, max_tokens=MAX_TOKENS)
    except GraphQLError as error:
        raise refuse(f"does not parse: {error.message}") from None
    rules = [*specified_rules, *VALIDATION_RULES]
    if not introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    errors = validate(schema, document, rules)
    if errors:
        raise refuse("is not valid against this server's schema: " + "; ".join(e.message for e in errors))
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    names = tuple(o.name.value for o in operations if o.name is not None)
    cost = 0
    for operation in operations:
        name = operation.name.value if operation.name else None
        cost = max(cost, query_cost(schema, document, name, None))
    if cost > MAX_QUERY_COST:
        raise refuse(f"costs {cost} points with its default page sizes; the maximum is {MAX_QUERY_COST}")
    return TrustedDocument(id=document_id, text=text, operation_names=names, cost=cost, source=source)


def load_for(settings: Any) -> TrustedDocuments:
    """The trusted documents of ``settings``, checked against the schema the server would serve (``groups-api serve``
    calls this before starting workers, so a bad manifest refuses to start with one clear line)."""
    from schema import build_schema

    introspection = not settings.production
    return TrustedDocuments.load(
        settings.trusted_documents, build_schema(introspection=introspection)._schema, introspection=introspection
    )
