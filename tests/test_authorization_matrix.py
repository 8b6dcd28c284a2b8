"""The authorization matrix: every field of the live schema classified, every operation run by every kind of caller.

1. ``test_every_field_is_classified``: each field of each object type is guarded by a directive, decided by its
   resolver (a row rule or a reference from an authorized row), public on purpose, or data of an object whose
   access was decided where it was reached. A new field without a classification fails here.
2. ``test_node_applies_the_guards_of_the_listing_field``: ``node(id)`` guards each type like the field listing it.
3. ``test_authorization_matrix``: builds one group practice (owner; a clinician and an administrator with no
   permission and with each permission; partner tokens of the owner with no scope and with each scope), a member
   of another practice and no credentials, and runs every root query field, every guarded nested field, ``node``
   for each type, every mutation and the statement PDF through HTTP as each caller. The expected outcome comes from
   the directives printed in the schema (and the contract's token rules), then from the documented row rules. A
   refused mutation must change nothing. The outcomes are written to docs/authorization.md, which must match.

Regenerate the document with ``GROUPS_API_WRITE_DOCS=1 python -m pytest tests/test_authorization_matrix.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from graphql import GraphQLObjectType, TypeInfo, TypeInfoVisitor, Visitor, parse, visit
from tortoise import Tortoise

from auth import permissions as p
from auth.passwords import hash_password
from auth.tokens import hash_secret, new_secret
from models import (
    ApiToken,
    AuditEvent,
    AuditHead,
    Chart,
    ChartAssignment,
    ChartNote,
    Event,
    Invitation,
    Member,
    PasswordReset,
    Practice,
    SubscriptionCharge,
    WebhookDelivery,
)
from models.enums import ALL_PERMISSIONS, MemberStatus, PracticeKind, Role, TokenScope
from models.enums import Permission as P
from resolvers import ids
from schema import node as node_registry
from schema import schema
from schema.directives import (
    AuthenticatedDirective,
    RequiresPermissionDirective,
    RequiresRoleDirective,
    RequiresScopeDirective,
)
from tests.conftest import PASSWORD, Api
from tests.factories import insert_api_token
from tests.factories_billing import charge, make_group
from tests.factories_charts import Actor, add_member, api_token, owner

DOC = Path(__file__).resolve().parent.parent / "docs" / "authorization.md"
WRITE_DOCS = os.environ.get("GROUPS_API_WRITE_DOCS") == "1"
REGENERATE = "GROUPS_API_WRITE_DOCS=1 python -m pytest tests/test_authorization_matrix.py"

ALLOWED, NULL, HIDDEN = "allowed", "null", "hidden"
FORBIDDEN, UNAUTHENTICATED, NOT_FOUND, BAD_INPUT = "FORBIDDEN", "UNAUTHENTICATED", "NOT_FOUND", "BAD_USER_INPUT"


# ====================================================================== classification

PUBLIC = {
    "Query.plans": "the published plan catalog, for sign-up and pricing pages",
    "Mutation.signUp": "creates a practice and its owner: there is no caller yet",
    "Mutation.logIn": "the password is the credential (failures throttled)",
    "Mutation.refreshSession": "the refresh token is the credential (single use, reuse revokes the session)",
    "Mutation.logOut": "ends the session named by its refresh token, or the caller's own session",
    "Mutation.acceptInvitation": "the invitation token is the credential (single use, guesses throttled)",
    "Mutation.requestPasswordReset": (
        "answers true whether or not the account exists; mails only the account's own address (throttled per account "
        "and address)"
    ),
    "Mutation.resetPassword": "the reset token is the credential (single use, one hour, guesses throttled)",
}

_MEMBER_REF = (
    "a member of the viewer's practice (practice-scoped loader), reached from an authorized row: public fields"
)
_JOINED_MEMBER = "the member joined with an authorized billing row: public fields"
_PRIVATE = "resolvers.members.can_see_private: the member themself and MANAGE_MEMBERS; null for anyone else"
_MONEY = "resolvers.members.can_see_money: as the private fields, and MANAGE_SUBSCRIPTION; null for anyone else"
_BILLING = "resolvers.billing.visible: the practice with VIEW_BILLING, a clinician's own rows, FORBIDDEN otherwise"
_BILLING_CHART = "resolvers.billing.readable_chart: the chart for those who may read it (charts.get_chart), else null"
_FROZEN = "the entries frozen on an authorized statement or invoice (same clinician and chart)"
_EVENTS = "resolvers.events.visible_events: the types a token's scopes cover, subjects the caller may read now"

DECIDED_BY_RESOLVER = {
    "Practice.owner": "the owner of the viewer's own practice",
    "Member.email": _PRIVATE,
    "Member.permissions": _PRIVATE,
    "Member.effectivePermissions": _PRIVATE,
    "Member.plan": _MONEY,
    "Member.traineeStatus": _MONEY,
    "Member.trainingProofValidUntil": _MONEY,
    "Member.license": _MONEY,
    "Chart.assignedClinicians": "members of the viewer's practice assigned to a chart already authorized",
    "ChartNote.author": _MEMBER_REF,
    "Invitation.invitedBy": _MEMBER_REF,
    "ApiToken.createdBy": _MEMBER_REF,
    "AuditEvent.actor": _MEMBER_REF,
    "SubscriptionCharge.member": _MEMBER_REF,
    "License.member": "a member of the viewer's practice, listed under an authorized subscription",
    "AuditEvent.apiToken": "resolvers.audit.can_see_api_tokens: sessions holding MANAGE_API_TOKENS; null otherwise",
    "PracticeSubscription.charges": "resolvers.subscriptions.practice_charges: the viewer's practice",
    "PracticeSubscription.seatQuote": (
        "memberId through resolvers.members.require_member: NOT_FOUND outside the practice"
    ),
    "Billing.currentBalance": _BILLING,
    "Billing.history": _BILLING,
    "Billing.statements": _BILLING,
    "Billing.invoices": _BILLING,
    "BillingEntry.chart": _BILLING_CHART,
    "Statement.chart": _BILLING_CHART,
    "Invoice.chart": _BILLING_CHART,
    "BillingEntry.invoice": "the invoice of an authorized entry: same practice, clinician and chart",
    "Statement.entries": _FROZEN,
    "Invoice.entries": _FROZEN,
    "BillingEntry.clinician": (
        "the clinician of an authorized entry (practice-scoped loader in lists, joined otherwise): public fields"
    ),
    "BillingEntry.createdBy": _MEMBER_REF,
    "Statement.clinician": _JOINED_MEMBER,
    "Statement.createdBy": _JOINED_MEMBER,
    "Invoice.clinician": _JOINED_MEMBER,
    "Invoice.createdBy": _JOINED_MEMBER,
    "Practice.events": _EVENTS + ", in the caller's practice",
    "WebhookEndpoint.apiToken": "the token of an authorized endpoint (practice-scoped loader)",
    "WebhookEndpoint.deliveries": (
        "resolvers.webhooks.visible_deliveries: the endpoint's deliveries whose event the caller may read"
    ),
    "WebhookDelivery.event": "the event of a visible delivery, read through " + _EVENTS,
}

_PAYLOAD = "a mutation's payload shows its caller what the mutation wrote or caused (contract)"
_REACHED = "the object's own data: its access was decided where it was reached"

OBJECT_DATA = {
    "Member": ("id name role status createdAt", "a member's public fields, readable wherever the member is (contract)"),
    "Practice": ("id name slug kind createdAt", "the viewer's own practice"),
    "Chart": ("id patientName dateOfBirth email phone status createdAt", _REACHED + " (charts.visible_charts)"),
    "ChartNote": ("id body createdAt", _REACHED + " (charts.visible_notes)"),
    "Invitation": (
        "id email role plan traineeStatus trainingProofValidUntil permissions status createdAt expiresAt",
        _REACHED,
    ),
    "ApiToken": ("id name scopes createdAt expiresAt lastUsedAt revokedAt", _REACHED + " (never the secret)"),
    "AuditEvent": ("id action targetId createdAt", _REACHED),
    "PracticeSubscription": ("status trial currentPeriodStart currentPeriodEnd monthlyTotal licenses", _REACHED),
    "Trial": ("startedAt endsAt isActive", _REACHED),
    "License": ("plan listPrice monthlyPrice reason", _REACHED),
    "SeatQuote": ("listPrice monthlyPrice reason chargeNow", _REACHED),
    "SubscriptionCharge": ("id kind amount periodStart periodEnd description createdAt", _REACHED),
    "BillingEntry": ("id kind amount occurredOn description patientName createdAt", _REACHED + " (billing.visible)"),
    "Statement": (
        "id number patientName periodStart periodEnd openingBalance closingBalance pdfUrl createdAt",
        _REACHED,
    ),
    "Invoice": ("id number patientName status total amountDue createdAt", _REACHED),
    "Plan": ("id code name category monthlyPrice", "the published plan catalog"),
    "Money": ("amount currency", "a value"),
    "PageInfo": ("hasNextPage hasPreviousPage startCursor endCursor", "pagination of an authorized list"),
    "ViewerAccess": (
        "member effectivePermissions scopes apiToken",
        "the caller's own access (a token may read itself)",
    ),
    "RateLimit": ("limit cost remaining resetAt", "the caller's own budget"),
    "AuthPayload": ("accessToken refreshToken accessTokenExpiresAt member", "what the caller signed in as"),
    "LogOutPayload": ("loggedOut", _PAYLOAD),
    "ActivateGroupPracticePayload": ("practice", _PAYLOAD),
    "UpdatePracticePayload": ("practice", _PAYLOAD),
    "TransferOwnershipPayload": ("practice", _PAYLOAD),
    "RequestPasswordResetPayload": ("requested", _PAYLOAD),
    "ChangePasswordPayload": ("member", _PAYLOAD),
    "UpdateMemberPayload": ("member charge", _PAYLOAD),
    "SetMemberPermissionsPayload": ("member", _PAYLOAD),
    "DeactivateMemberPayload": ("member", _PAYLOAD),
    "ReactivateMemberPayload": ("member charge", _PAYLOAD),
    "InviteMemberPayload": ("invitation token", _PAYLOAD),
    "RevokeInvitationPayload": ("invitation", _PAYLOAD),
    "StartSubscriptionPayload": ("subscription charge", _PAYLOAD),
    "ChartPayload": ("chart", _PAYLOAD),
    "AddChartNotePayload": ("note", _PAYLOAD),
    "BillingEntryPayload": ("entry balance", _PAYLOAD),
    "RecordPaymentPayload": ("entry balance invoice", _PAYLOAD),
    "GenerateStatementPayload": ("statement", _PAYLOAD),
    "CreateInvoicePayload": ("invoice", _PAYLOAD),
    "VoidInvoicePayload": ("invoice", _PAYLOAD),
    "CreateApiTokenPayload": ("apiToken token", _PAYLOAD),
    "RevokeApiTokenPayload": ("apiToken", _PAYLOAD),
    "Event": ("id type subjectId occurredAt", _REACHED + " (events.visible_events)"),
    "EventConnection": ("edges pageInfo", "a connection: its list is authorized by the field returning it"),
    "WebhookEndpoint": ("id url description eventTypes createdAt", _REACHED + " (never the secret)"),
    "WebhookDelivery": ("id status attempts lastResponseStatus lastAttemptAt nextAttemptAt", _REACHED),
    "WebhookDeliveryConnection": ("edges pageInfo", "a connection: its list is authorized by the field returning it"),
    "CreateWebhookEndpointPayload": ("webhookEndpoint secret", _PAYLOAD),
    "DeleteWebhookEndpointPayload": ("webhookEndpoint", _PAYLOAD),
}

# Relay plumbing: a list's connection and edge types carry exactly these fields, and nothing else.
CONNECTION_FIELDS = {"edges", "pageInfo", "totalCount"}
EDGE_FIELDS = {"node", "cursor"}

# The field whose guards node(id) must apply to each type (contract: "the same directives and row rules as the
# field that lists it").
NODE_LISTED_BY = {
    "Practice": "Query.practice",
    "Plan": "Query.plans",
    "Member": "Practice.members",
    "Invitation": "Practice.invitations",
    "Chart": "Practice.charts",
    "ChartNote": "Chart.notes",
    "SubscriptionCharge": "Practice.subscription",
    "ApiToken": "Practice.apiTokens",
    "AuditEvent": "Practice.auditLog",
    "BillingEntry": "Practice.billing",
    "Statement": "Practice.billing",
    "Invoice": "Practice.billing",
    "Event": "Practice.events",
    "WebhookEndpoint": "Practice.webhookEndpoints",
    "WebhookDelivery": "Practice.webhookEndpoints",
}


@dataclass(frozen=True)
class Guard:
    """The authorization directives on a field, plus the contract's rule for mutations without a scope."""

    authenticated: bool = False
    roles: frozenset[Role] | None = None
    permission: P | None = None
    scope: TokenScope | None = None
    session_only: bool = False

    @property
    def needs_viewer(self) -> bool:
        return self.authenticated or self.roles is not None or self.permission is not None or self.scope is not None

    @property
    def is_open(self) -> bool:
        return not self.needs_viewer and not self.session_only

    def describe(self) -> str:
        parts = ["@authenticated"] if self.authenticated else []
        if self.roles is not None:
            parts.append(f"@requiresRole({', '.join(sorted(r.value for r in self.roles))})")
        if self.permission is not None:
            parts.append(f"@requiresPermission({self.permission.value})")
        if self.scope is not None:
            parts.append(f"@requiresScope({self.scope.value})")
        if self.session_only:
            parts.append("sessions only")
        return " ".join(parts)


def object_types() -> dict[str, GraphQLObjectType]:
    return {
        name: t
        for name, t in schema._schema.type_map.items()
        if isinstance(t, GraphQLObjectType) and not name.startswith("__")
    }


def field_guard(type_name: str, definition: Any) -> Guard:
    """The guard printed on a field (its schema directives), as the contract reads it."""
    found: dict[str, Any] = {}
    for directive in definition.directives:
        if isinstance(directive, AuthenticatedDirective):
            found["authenticated"] = True
        elif isinstance(directive, RequiresRoleDirective):
            found["roles"] = frozenset(Role(r) for r in directive.roles)
        elif isinstance(directive, RequiresPermissionDirective):
            found["permission"] = P(directive.permission)
        elif isinstance(directive, RequiresScopeDirective):
            found["scope"] = TokenScope(directive.scope)
    return Guard(**found, session_only=type_name == "Mutation" and "scope" not in found)


def all_guards() -> dict[str, Guard]:
    return {
        f"{type_name}.{name}": field_guard(type_name, f.extensions["strawberry-definition"])
        for type_name, t in object_types().items()
        for name, f in t.fields.items()
    }


GUARDS = all_guards()


def node_guard(type_name: str) -> Guard:
    """What node(id) checks for ``type_name`` (the registry's permission objects), as a Guard."""
    found: dict[str, Any] = {}
    for check in node_registry.registered_checks(type_name):
        if isinstance(check, p.RequiresRole):
            found["roles"] = frozenset(check.roles)
        elif isinstance(check, p.RequiresPermission):
            found["permission"] = check.permission
        elif isinstance(check, p.RequiresScope):
            found["scope"] = check.scope
    return Guard(**found)


def classification() -> dict[str, tuple[str, str]]:
    """coordinate -> (class, reason) for every field of every object type; raises listing what is unclassified."""
    classes: dict[str, tuple[str, str]] = {}
    unclassified, contradictions = [], []
    for type_name, t in object_types().items():
        data_fields, data_reason = OBJECT_DATA.get(type_name, ("", ""))
        for name in t.fields:
            coordinate = f"{type_name}.{name}"
            guard = GUARDS[coordinate]
            manual = [
                ("public", PUBLIC.get(coordinate)),
                ("decided by its resolver", DECIDED_BY_RESOLVER.get(coordinate)),
                ("object data", data_reason if name in data_fields.split() else None),
            ]
            manual = [(kind, reason) for kind, reason in manual if reason]
            if guard.needs_viewer:
                classes[coordinate] = ("guarded", guard.describe())
                if manual:
                    contradictions.append(f"{coordinate} is guarded yet listed as {manual[0][0]}")
            elif len(manual) > 1:
                contradictions.append(f"{coordinate} is listed as {' and '.join(k for k, _ in manual)}")
            elif manual and (manual[0][0] == "public" or not guard.session_only):
                kind, reason = manual[0]
                classes[coordinate] = (kind, f"{reason}; partner tokens are refused" if guard.session_only else reason)
            elif type_name.endswith("Connection") and set(t.fields) == CONNECTION_FIELDS:
                classes[coordinate] = ("object data", "a connection: its list is authorized by the field returning it")
            elif type_name.endswith("Edge") and set(t.fields) == EDGE_FIELDS:
                classes[coordinate] = ("object data", "an edge of an authorized connection")
            else:  # including a mutation without directives that is not public on purpose
                unclassified.append(coordinate)
    listed = (
        set(PUBLIC)
        | set(DECIDED_BY_RESOLVER)
        | {f"{t}.{n}" for t, (names, _) in OBJECT_DATA.items() for n in names.split()}
    )
    stale = sorted(listed - set(GUARDS))
    problems = [
        *(
            f"unclassified field {c}: guard it, or add it to PUBLIC, DECIDED_BY_RESOLVER or OBJECT_DATA"
            for c in unclassified
        ),
        *contradictions,
        *(f"classified field {c} is not in the schema" for c in stale),
    ]
    assert not problems, "\n".join(problems)
    return classes


def test_every_field_is_classified():
    classes = classification()
    assert len(classes) == len(GUARDS)
    # Public on purpose means reachable without credentials; the mutations among them are for sessions alone.
    for coordinate in PUBLIC:
        guard = GUARDS[coordinate]
        assert not guard.needs_viewer, f"{coordinate} is listed as public but needs a caller"
        assert guard.session_only == coordinate.startswith("Mutation."), coordinate
    # Every root field and every mutation is guarded or public on purpose: nothing at the root is merely "data".
    for coordinate, (kind, _) in classes.items():
        if coordinate.split(".")[0] in ("Query", "Mutation"):
            assert kind in ("guarded", "public"), f"{coordinate} is {kind}"


def test_node_applies_the_guards_of_the_listing_field():
    registered = node_registry.registered_types()
    implementing = {name for name, t in object_types().items() if any(i.name == "Node" for i in t.interfaces)}
    assert registered == implementing == set(NODE_LISTED_BY)
    for type_name, listing in NODE_LISTED_BY.items():
        listed = GUARDS[listing]
        expected = Guard(roles=listed.roles, permission=listed.permission, scope=listed.scope)
        assert node_guard(type_name) == expected, f"node({type_name}) does not guard like {listing}"


# ====================================================================== callers


@dataclass(frozen=True)
class Caller:
    label: str
    table: str
    role: Role | None = None  # None: no credentials
    grants: frozenset[P] = frozenset()
    scopes: frozenset[TokenScope] | None = None  # a partner token's scopes; None for a session
    outsider: bool = False  # the owner of another practice, using the first practice's ids

    @property
    def anonymous(self) -> bool:
        return self.role is None

    @property
    def is_token(self) -> bool:
        return self.scopes is not None

    @property
    def permissions(self) -> frozenset[P]:
        return ALL_PERMISSIONS if self.role == Role.OWNER else self.grants

    def has(self, permission: P) -> bool:
        return permission in self.permissions


MEMBERS, ADMINISTRATORS, TOKENS, OTHERS = "members", "administrators", "tokens", "others"
TABLES = {
    MEMBERS: "The owner and clinicians (sessions)",
    ADMINISTRATORS: "Administrators (sessions)",
    TOKENS: "Partner API tokens created by the owner",
    OTHERS: "Outsiders",
}

CALLERS = [
    Caller("owner", MEMBERS, Role.OWNER),
    Caller("clinician", MEMBERS, Role.CLINICIAN),
    *(Caller(f"clinician +{perm.value}", MEMBERS, Role.CLINICIAN, frozenset({perm})) for perm in P),
    Caller("administrator", ADMINISTRATORS, Role.ADMINISTRATOR),
    *(Caller(f"administrator +{perm.value}", ADMINISTRATORS, Role.ADMINISTRATOR, frozenset({perm})) for perm in P),
    Caller("token (no scope)", TOKENS, Role.OWNER, scopes=frozenset()),
    *(Caller(f"token +{scope.value}", TOKENS, Role.OWNER, scopes=frozenset({scope})) for scope in TokenScope),
    Caller("owner of another practice", OTHERS, Role.OWNER, outsider=True),
    Caller("no credentials", OTHERS),
]


def verdict(guard: Guard, caller: Caller) -> str | None:
    """What the directives (and the contract's token rules) say for this caller: None when they let it through."""
    if caller.anonymous:
        return UNAUTHENTICATED if guard.needs_viewer else None
    if caller.is_token:
        if guard.session_only or ((guard.roles is not None or guard.permission is not None) and guard.scope is None):
            return FORBIDDEN
        if guard.scope is not None and guard.scope not in caller.scopes:
            return FORBIDDEN
    if guard.roles is not None and caller.role not in guard.roles:
        return FORBIDDEN
    if guard.permission is not None and not caller.has(guard.permission):
        return FORBIDDEN
    return None


# ====================================================================== the world


@dataclass
class World:
    """Practice A (the callers, the clinicians Dana and Eve, and one row of each kind), and the outsider's practice
    B."""

    api: Api
    owner: Actor
    outsider: Actor
    dana: Actor
    eve: Actor
    bearer: dict[str, str | None] = field(default_factory=dict)
    member_of: dict[str, Member | None] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    counter: int = 0

    @property
    def practice_id(self) -> uuid.UUID:
        return self.owner.member.practice_id

    def next(self) -> int:
        self.counter += 1
        return self.counter

    async def chart(self, *assigned: Member | None) -> str:
        """A new chart of practice A, assigned to ``assigned`` (owners and clinicians; others are skipped)."""
        chart = await Chart.create(
            id=uuid.uuid4(),
            practice_id=self.practice_id,
            patient_name=f"Patient {self.next()}",
            patient_name_search="patient",
            created_by_id=self.owner.member.id,
            created_at=datetime.now(UTC),
        )
        for member in assigned:
            if (
                member is not None
                and member.practice_id == self.practice_id
                and member.role in (Role.OWNER, Role.CLINICIAN)
            ):
                await ChartAssignment.create(
                    id=uuid.uuid4(), chart=chart, clinician_id=member.id, created_at=datetime.now(UTC)
                )
        return ids.encode("Chart", chart.id)

    async def clinician(self) -> str:
        actor = await add_member(self.api, self.owner, f"target{self.next()}@example.com", log_in=False)
        return actor.id

    async def invitation(self) -> tuple[str, str]:
        """A pending invitation of practice A: (global id, token)."""
        token, now = new_secret(), datetime.now(UTC)
        row = await Invitation.create(
            id=uuid.uuid4(),
            practice_id=self.practice_id,
            email=f"invitee{self.next()}@example.com",
            role=Role.CLINICIAN,
            plan_code="erx-lite",
            token_hash=hash_secret(token),
            invited_by_id=self.owner.member.id,
            created_at=now,
            expires_at=now + timedelta(days=7),
        )
        return ids.encode("Invitation", row.id), token

    async def refresh_token(self) -> str:
        body = await self.api.log_in((await Practice.get(id=self.practice_id)).slug, self.dana.member.email)
        return body["data"]["logIn"]["refreshToken"]

    async def owner_charge(self) -> None:
        await self.api.ok(RECORD_CHARGE, {"input": self.charge_input("25.00")}, self.owner.token)

    def charge_input(self, amount: str, clinician: str | None = None, chart: str | None = None) -> dict:
        return {
            "chartId": chart or self.ids["chart"],
            "clinicianId": clinician or self.dana.id,
            "amount": amount,
            "occurredOn": today(),
            "description": "Session",
        }

    def money_input(self, **extra: Any) -> dict:
        return {"clinicianIds": [self.dana.id], "chartId": self.ids["chart"], **extra}


async def token_id(secret: str) -> str:
    return ids.encode("ApiToken", (await ApiToken.get(token_hash=hash_secret(secret))).id)


def webhook_input(world: World) -> dict:
    return {
        "apiTokenId": world.ids["webhook_token"],
        "url": "http://127.0.0.1:9/hook",
        "eventTypes": ["BILLING_ENTRY_RECORDED"],
    }


def today() -> str:
    return datetime.now(UTC).date().isoformat()


RECORD_CHARGE = "mutation($input: RecordChargeInput!) { recordCharge(input: $input) { entry { id } } }"


async def build_world(api: Api) -> World:
    a = await owner(api, "Calm Minds", "owner@example.com")
    b = await owner(api, "Other Practice", "other@example.com")
    dana = await add_member(api, a, "dana@example.com", name="Dana Clinician")
    eve = await add_member(api, a, "eve@example.com", name="Eve Clinician")
    world = World(api=api, owner=a, outsider=b, dana=dana, eve=eve)
    world.ids["practice"], world.ids["dana"] = ids.encode("Practice", a.member.practice_id), dana.id
    world.ids["plan"] = (await api.ok("{ plans { id } }"))["plans"][0]["id"]
    for caller in CALLERS:
        if caller.anonymous:
            world.bearer[caller.label], world.member_of[caller.label] = None, None
        elif caller.outsider:
            world.bearer[caller.label], world.member_of[caller.label] = b.token, b.member
        elif caller.is_token:
            world.bearer[caller.label], world.member_of[caller.label] = await api_token(a, caller.scopes), a.member
        elif caller.role == Role.OWNER:
            world.bearer[caller.label], world.member_of[caller.label] = a.token, a.member
        else:
            slug = caller.label.replace(" +", "-").replace("_", "-").lower()
            actor = await add_member(api, a, f"{slug}@example.com", role=caller.role, permissions=caller.grants)
            world.bearer[caller.label], world.member_of[caller.label] = actor.token, actor.member

    # One row of each kind in practice A, out of reach of the callers' own assignments: Dana's chart and note,
    # a pending invitation, an API token, an audit event written through a token, Dana's billing.
    world.ids["chart"] = await world.chart(dana.member)
    note = await ChartNote.create(
        id=uuid.uuid4(),
        chart_id=ids.parse(world.ids["chart"])[1],
        author_id=dana.member.id,
        body="Private",
        created_at=datetime.now(UTC),
    )
    world.ids["note"] = ids.encode("ChartNote", note.id)
    world.ids["invitation"], _ = await world.invitation()
    writer = await api_token(a, [TokenScope.WRITE_CHARTS])
    token_chart = (await api.ok(CREATE_CHART, {"input": {"patientName": "Via Token"}}, writer))["createChart"]["chart"][
        "id"
    ]
    event = await AuditEvent.filter(
        practice_id=world.practice_id, target_id=token_chart, action="chart.created"
    ).first()
    world.ids["token_chart"], world.ids["audit_event"] = token_chart, ids.encode("AuditEvent", event.id)
    world.ids["api_token"] = ids.encode("ApiToken", event.api_token_id)
    # A webhook endpoint for a READ_BILLING token of the owner, to an address that refuses connections: Dana's entry
    # below is queued for it (and its first attempt fails), so the endpoint has a delivery.
    world.ids["webhook_token"] = await token_id(await api_token(a, [TokenScope.READ_BILLING]))
    endpoint = await api.ok(CREATE_WEBHOOK, {"input": webhook_input(world)}, a.token)
    world.ids["webhook_endpoint"] = endpoint["createWebhookEndpoint"]["webhookEndpoint"]["id"]
    entry = await api.ok(RECORD_CHARGE, {"input": world.charge_input("80.00")}, a.token)
    world.ids["entry"] = entry["recordCharge"]["entry"]["id"]
    event = await Event.get(practice_id=world.practice_id, subject_id=ids.parse(world.ids["entry"])[1])
    world.ids["event"] = ids.encode("Event", event.id)
    world.ids["webhook_delivery"] = ids.encode("WebhookDelivery", (await WebhookDelivery.get(event_id=event.id)).id)
    statement = await api.ok(
        GENERATE_STATEMENT, {"input": world.money_input(periodStart=today(), periodEnd=today())}, a.token
    )
    world.ids["statement"] = statement["generateStatement"]["statement"]["id"]
    invoice = await api.ok(CREATE_INVOICE, {"input": world.money_input()}, a.token)
    world.ids["invoice"] = invoice["createInvoice"]["invoice"]["id"]
    return world


# ====================================================================== operations

Setup = Callable[[World, Caller], Awaitable[dict]]
Probe = Callable[[dict, dict, World], str]
Rule = Callable[[Caller], "str | None"]


def at(data: Any, path: str) -> Any:
    for key in path.split("."):
        if data is None:
            return None
        data = data[key]
    return data


def present(path: str) -> Probe:
    """Allowed when the value at ``path`` is there, null when it is null (a row rule without an error)."""
    return lambda data, variables, world: ALLOWED if at(data, path) is not None else NULL


def every(*paths: str) -> Probe:
    """Allowed when every value is there, null when every one is null (and a visible mismatch otherwise)."""

    def probe(data: dict, variables: dict, world: World) -> str:
        values = [at(data, path) is not None for path in paths]
        return ALLOWED if all(values) else NULL if not any(values) else f"partly null {values}"

    return probe


def lists(path: str, target: str) -> Probe:
    """Allowed when the list at ``path`` (edges, or plain objects) holds ``world.ids[target]``; hidden when the list
    answers without it (a row rule: another practice's rows, or rows the caller may not see)."""

    def probe(data: dict, variables: dict, world: World) -> str:
        items = at(data, path)
        if items is None:
            return NULL
        found = {(item.get("node") or item.get("member") or item)["id"] for item in items}
        return ALLOWED if world.ids[target] in found else HIDDEN

    return probe


def node_is(data: dict, variables: dict, world: World) -> str:
    node = data["node"]
    if node is None:
        return NULL
    assert node["id"] == variables["id"], (node, variables)
    return ALLOWED


def balance_of_dana(data: dict, variables: dict, world: World) -> str:
    amount = at(data, "practice.billing.currentBalance.amount")
    return NULL if amount is None else HIDDEN if amount in ("0", "0.00") else ALLOWED


@dataclass
class Op:
    label: str
    document: str
    setup: Setup | None = None
    probe: Probe | None = None  # reads the outcome from an answer without errors
    node_type: str | None = None  # node ops: the type whose registered guards node applies
    node_rule: Rule | None = None  # node ops: the row rule of the node (a refusal reads as null)
    rule: Rule | None = None  # the row rule of the rest, for callers the guards let through
    first: bool = False  # runs before the others (the world's subscription starts here)
    after: Callable[[World], Awaitable[None]] | None = None
    refused: str | None = None  # the whole document is refused before any field runs, whoever calls

    @property
    def mutation(self) -> bool:
        return self.document.lstrip().startswith("mutation")

    def coordinates(self) -> list[str]:
        """Every field the document selects, in document order (schema coordinates)."""
        info, found = TypeInfo(schema._schema), []

        class Collect(Visitor):
            def enter_field(self, node: Any, *_: Any) -> None:
                found.append(f"{info.get_parent_type().name}.{node.name.value}")

        visit(parse(self.document), TypeInfoVisitor(info, Collect()))
        return found

    def expected(self, caller: Caller) -> str:
        if self.refused:
            return self.refused
        for coordinate in self.coordinates():
            refused = verdict(GUARDS.get(coordinate, Guard()), caller)
            if refused:
                return refused
            at_node = coordinate == "Query.node" and self.node_type
            if at_node and (verdict(node_guard(self.node_type), caller) or (self.node_rule and self.node_rule(caller))):
                return NULL
        return (self.rule(caller) if self.rule else None) or ALLOWED

    async def outcome(self, world: World, caller: Caller, variables: dict) -> tuple[str, str]:
        """(outcome, detail): the first error's code, or what the probe reads from the data."""
        body = await world.api.post(self.document, variables, world.bearer[caller.label])
        if body.get("errors"):
            error = body["errors"][0]
            return error.get("extensions", {}).get("code", "no code"), error.get("message", "")
        assert self.probe is not None, self.label
        return self.probe(body["data"], variables, world), ""


PDF_STATUS = {200: ALLOWED, 401: UNAUTHENTICATED, 403: FORBIDDEN, 404: NOT_FOUND}


class PdfOp(Op):
    """GET /statements/{id}.pdf: the same bearer token and the same guards as Practice.billing."""

    @property
    def mutation(self) -> bool:
        return False

    def coordinates(self) -> list[str]:
        return ["Practice.billing"]

    async def outcome(self, world: World, caller: Caller, variables: dict) -> tuple[str, str]:
        token = world.bearer[caller.label]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await world.api.client.get(f"/statements/{world.ids['statement']}.pdf", headers=headers)
        return PDF_STATUS.get(response.status_code, str(response.status_code)), ""


# ---------------------------------------------------------------------- row rules


def outsider_gets(outcome: str) -> Rule:
    """Another practice's ids behave as nonexistent; inside the practice nothing else applies."""
    return lambda c: outcome if c.outsider else None


def sees_all_charts(c: Caller) -> bool:
    """resolvers.charts.visible_charts: VIEW_ALL_CHARTS, ASSIGN_CHARTS or MANAGE_BILLING find every chart."""
    return any(c.has(p) for p in (P.VIEW_ALL_CHARTS, P.ASSIGN_CHARTS, P.MANAGE_BILLING)) and not c.outsider


def reads_own_chart(c: Caller) -> bool:
    """A chart assigned to the caller (the owner for a token): readable with every chart's reach or as its clinician."""
    return not c.outsider and (sees_all_charts(c) or c.role == Role.CLINICIAN)


def chart_of_dana(missing: str) -> Rule:
    """Dana's chart: visible to holders of VIEW_ALL_CHARTS, ASSIGN_CHARTS or MANAGE_BILLING (and the owner);
    ``missing`` for anyone else."""
    return lambda c: None if sees_all_charts(c) else missing


def reads_notes_of_dana(c: Caller) -> bool:
    """resolvers.charts.note_charts: the notes of Dana's chart for the owner and clinicians holding VIEW_ALL_CHARTS
    (never an administrator; ASSIGN_CHARTS and MANAGE_BILLING find the chart, not its notes)."""
    return not c.outsider and (c.role == Role.OWNER or (c.role == Role.CLINICIAN and c.has(P.VIEW_ALL_CHARTS)))


def notes_of_dana(hidden: str, closed: str) -> Rule:
    """Dana's notes: ``hidden`` when the chart itself is out of reach, ``closed`` when only its notes are."""
    return lambda c: None if reads_notes_of_dana(c) else closed if sees_all_charts(c) else hidden


def edits_chart(c: Caller, assigned: bool) -> str | None:
    """resolvers.charts.editable_charts: the owner, VIEW_ALL_CHARTS, ASSIGN_CHARTS, or the chart's clinician;
    FORBIDDEN for one who finds the chart otherwise (MANAGE_BILLING), NOT_FOUND for anyone else."""
    if c.outsider:
        return NOT_FOUND
    if c.has(P.VIEW_ALL_CHARTS) or c.has(P.ASSIGN_CHARTS) or (assigned and c.role in (Role.OWNER, Role.CLINICIAN)):
        return None
    return FORBIDDEN if sees_all_charts(c) else NOT_FOUND


def voids_invoice_of_dana(c: Caller) -> str | None:
    """resolvers.billing.void_invoice: Dana or MANAGE_BILLING; FORBIDDEN for another who sees it (VIEW_BILLING),
    NOT_FOUND for anyone else."""
    if c.outsider:
        return NOT_FOUND
    if c.has(P.MANAGE_BILLING):
        return None
    return FORBIDDEN if c.has(P.VIEW_BILLING) else NOT_FOUND


def own_chart(missing: str) -> Rule:
    return lambda c: None if reads_own_chart(c) else missing


def billing_of_dana(missing: str) -> Rule:
    """One of Dana's billing rows by id: seen with VIEW_BILLING (the owner holds it); ``missing`` for anyone else."""
    return lambda c: None if c.has(P.VIEW_BILLING) and not c.outsider else missing


def event_of_danas_entry(missing: str) -> Rule:
    """The event of Dana's billing entry: read like the entry (VIEW_BILLING, the owner holds it), by a token only with
    READ_BILLING (the scope its type names); ``missing`` for anyone else."""
    return lambda c: (
        None
        if c.has(P.VIEW_BILLING) and not c.outsider and (not c.is_token or TokenScope.READ_BILLING in c.scopes)
        else missing
    )


def billing_list(c: Caller) -> str | None:
    """A billing list or balance (Dana's rows in it): the practice's with VIEW_BILLING, only a clinician's own
    without it (so hidden), FORBIDDEN for an administrator without it; another practice's list lacks them."""
    if c.outsider or (c.role == Role.CLINICIAN and not c.has(P.VIEW_BILLING)):
        return HIDDEN
    return None if c.has(P.VIEW_BILLING) else FORBIDDEN


def naming_dana(c: Caller) -> str | None:
    """A balance naming Dana: naming someone else without VIEW_BILLING is FORBIDDEN; in another practice her id
    matches nothing."""
    if c.outsider:
        return HIDDEN
    return None if c.has(P.VIEW_BILLING) else FORBIDDEN


def bills_for_dana(c: Caller) -> str | None:
    """Money moves for Dana on her chart: NOT_FOUND outside the practice, MANAGE_BILLING to bill for someone
    else, and the chart must be one the caller can read."""
    if c.outsider:
        return NOT_FOUND
    if not c.has(P.MANAGE_BILLING):
        return FORBIDDEN
    return None if sees_all_charts(c) else NOT_FOUND


def bills_for_self(c: Caller) -> str | None:
    """A charge for oneself on one's own chart: any owner or clinician; an administrator cannot read the chart
    (NOT_FOUND) or, finding every chart, is no clinician (BAD_USER_INPUT)."""
    if c.outsider:
        return NOT_FOUND
    if c.role == Role.ADMINISTRATOR:
        return BAD_INPUT if sees_all_charts(c) else NOT_FOUND
    return None


def may_assign_others(c: Caller) -> str | None:
    if c.outsider:
        return NOT_FOUND
    return None if c.has(P.ASSIGN_CHARTS) else FORBIDDEN


def manages(c: Caller, permission: P) -> bool:
    """A management permission as a row rule: it carries no scope, so never for a token."""
    return c.has(permission) and not c.is_token


def private_fields(c: Caller) -> str | None:
    """Another member's email and permissions: MANAGE_MEMBERS (sessions)."""
    return None if manages(c, P.MANAGE_MEMBERS) else NULL


def money_fields(c: Caller) -> str | None:
    """Another member's plan, trainee fields and license: MANAGE_MEMBERS or MANAGE_SUBSCRIPTION (sessions)."""
    return None if manages(c, P.MANAGE_MEMBERS) or manages(c, P.MANAGE_SUBSCRIPTION) else NULL


def token_names_for_sessions(c: Caller) -> str | None:
    return None if manages(c, P.MANAGE_API_TOKENS) else NULL


def billing_chart(c: Caller) -> str | None:
    """BillingEntry.chart: the whole chart only for those who may read it: VIEW_ALL_CHARTS here, and READ_CHARTS for
    a token (the guard of every other way to a chart)."""
    if not sees_all_charts(c) or (c.is_token and TokenScope.READ_CHARTS not in c.scopes):
        return NULL
    return None


# ---------------------------------------------------------------------- setups


def values(**fixed: Any) -> Setup:
    async def setup(world: World, caller: Caller) -> dict:
        return {name: world.ids[key] for name, key in fixed.items()}

    return setup


def node_of(key: str) -> Setup:
    return values(id=key)


async def own_chart_node(world: World, caller: Caller) -> dict:
    return {"id": await world.chart(world.member_of[caller.label])}


async def new_practice(world: World, caller: Caller) -> dict:
    n = world.next()
    return {
        "input": {
            "practiceName": f"Matrix {n}",
            "name": "New Owner",
            "email": f"new{n}@example.com",
            "password": PASSWORD,
            "planCode": "erx-lite",
        }
    }


async def dana_log_in(world: World, caller: Caller) -> dict:
    slug = (await Practice.get(id=world.practice_id)).slug
    return {"input": {"practiceSlug": slug, "email": world.dana.member.email, "password": PASSWORD}}


async def dana_log_in_and_dana(world: World, caller: Caller) -> dict:
    return {**await dana_log_in(world, caller), "dana": world.ids["dana"]}


async def refresh_token(world: World, caller: Caller) -> dict:
    return {"input": {"refreshToken": await world.refresh_token()}}


async def invitation_token(world: World, caller: Caller) -> dict:
    _, token = await world.invitation()
    return {"input": {"token": token, "name": "Joiner", "password": PASSWORD}}


async def solo_practices(world: World, caller: Caller) -> dict:
    await Practice.filter(id__in=[world.practice_id, world.outsider.member.practice_id]).update(kind=PracticeKind.SOLO)
    return {}


async def group_practices(world: World) -> None:
    await Practice.filter(id__in=[world.practice_id, world.outsider.member.practice_id]).update(kind=PracticeKind.GROUP)


async def remember_charge(world: World) -> None:
    charge = await SubscriptionCharge.filter(practice_id=world.practice_id).order_by("created_at").first()
    world.ids["charge"] = ids.encode("SubscriptionCharge", charge.id)


async def invite(world: World, caller: Caller) -> dict:
    return {"input": {"email": f"invitee{world.next()}@example.com", "role": "CLINICIAN", "planCode": "erx-lite"}}


async def pending_invitation(world: World, caller: Caller) -> dict:
    gid, _ = await world.invitation()
    return {"input": {"invitationId": gid}}


def new_clinician(**extra: Any) -> Setup:
    async def setup(world: World, caller: Caller) -> dict:
        return {"input": {"memberId": await world.clinician(), **extra}}

    return setup


async def former_clinician(world: World, caller: Caller) -> dict:
    """A deactivated clinician without grants (one with grants comes back through the owner alone)."""
    member_id = await world.clinician()
    await Member.filter(id=ids.decode(member_id, "Member")).update(
        status=MemberStatus.DEACTIVATED, deactivated_at=datetime.now(UTC)
    )
    return {"input": {"memberId": member_id}}


async def reset_request(world: World, caller: Caller) -> dict:
    """A reset asked for a clinician of practice A (a new one each time: reset requests are throttled per account)."""
    member = await Member.get(id=ids.decode(await world.clinician(), "Member"))
    return {"input": {"practiceSlug": (await Practice.get(id=world.practice_id)).slug, "email": member.email}}


async def reset_token(world: World, caller: Caller) -> dict:
    """A live reset token of a new clinician of practice A (ending a clinician's sessions touches no caller's)."""
    member_id = ids.decode(await world.clinician(), "Member")
    token, now = new_secret(), datetime.now(UTC)
    await PasswordReset.create(
        id=uuid.uuid4(),
        practice_id=world.practice_id,
        member_id=member_id,
        token_hash=hash_secret(token),
        created_at=now,
        expires_at=now + timedelta(hours=1),
    )
    return {"input": {"token": token, "newPassword": "plum-fjord-kiwi"}}


async def own_password_change(world: World, caller: Caller) -> dict:
    return {"input": {"currentPassword": PASSWORD, "newPassword": "plum-fjord-kiwi"}}


async def passwords_back(world: World) -> None:
    """Every member's password as the world began (changePassword changed the callers')."""
    await Member.all().update(password_hash=hash_password(PASSWORD))


async def practice_name(world: World, caller: Caller) -> dict:
    return {"input": {"name": f"Calm Minds {world.next()}"}}


async def names_back(world: World) -> None:
    await Practice.filter(id=world.practice_id).update(name="Calm Minds")
    await Practice.filter(id=world.outsider.member.practice_id).update(name="Other Practice")


async def ownership_target(world: World, caller: Caller) -> dict:
    return {"input": {"memberId": await world.clinician(), "password": PASSWORD}}


async def ownership_back(world: World) -> None:
    """Practice A's owner owns it again; the clinician it was handed to is a clinician again."""
    owner_id = world.owner.member.id
    await Member.filter(practice_id=world.practice_id, role=Role.OWNER).exclude(id=owner_id).update(role=Role.CLINICIAN)
    await Member.filter(id=owner_id).update(role=Role.OWNER, permissions=[])


async def new_patient(world: World, caller: Caller) -> dict:
    return {"input": {"patientName": f"Patient {world.next()}"}}


async def new_patient_for_eve(world: World, caller: Caller) -> dict:
    return {"input": {"patientName": f"Patient {world.next()}", "clinicianIds": [world.eve.id]}}


def danas_new_chart(clinician: str) -> Setup:
    async def setup(world: World, caller: Caller) -> dict:
        target = world.eve if clinician == "eve" else world.dana
        return {"input": {"chartId": await world.chart(world.dana.member), "clinicianId": target.id}}

    return setup


async def note_on_danas_chart(world: World, caller: Caller) -> dict:
    return {"input": {"chartId": world.ids["chart"], "body": "A note"}}


async def note_on_own_chart(world: World, caller: Caller) -> dict:
    return {"input": {"chartId": await world.chart(world.member_of[caller.label]), "body": "A note"}}


async def new_token_input(world: World, caller: Caller) -> dict:
    return {"input": {"name": "Partner", "scopes": ["READ_MEMBERS"]}}


async def live_api_token(world: World, caller: Caller) -> dict:
    row = await ApiToken.get(token_hash=hash_secret(await api_token(world.owner, [TokenScope.READ_MEMBERS])))
    return {"input": {"apiTokenId": ids.encode("ApiToken", row.id)}}


def charge_for_dana(amount: str) -> Setup:
    async def setup(world: World, caller: Caller) -> dict:
        return {"input": world.charge_input(amount)}

    return setup


async def charge_for_self(world: World, caller: Caller) -> dict:
    member = world.member_of[caller.label]
    chart = await world.chart(member)
    return {
        "input": world.charge_input(
            "12.00", clinician=ids.encode("Member", member.id) if member else world.dana.id, chart=chart
        )
    }


def money_move(**extra: Any) -> Setup:
    async def setup(world: World, caller: Caller) -> dict:
        return {"input": world.money_input(**extra)}

    return setup


async def new_webhook(world: World, caller: Caller) -> dict:
    return {"input": webhook_input(world)}


async def live_webhook(world: World, caller: Caller) -> dict:
    endpoint = await world.api.ok(CREATE_WEBHOOK, {"input": webhook_input(world)}, world.owner.token)
    return {"input": {"webhookEndpointId": endpoint["createWebhookEndpoint"]["webhookEndpoint"]["id"]}}


async def uninvoiced_charge(world: World, caller: Caller) -> dict:
    await world.owner_charge()
    return {"input": world.money_input()}


async def update_danas_chart(world: World, caller: Caller) -> dict:
    return {"input": {"chartId": await world.chart(world.dana.member), "patientName": f"Renamed {world.next()}"}}


async def update_own_chart(world: World, caller: Caller) -> dict:
    return {"input": {"chartId": await world.chart(world.member_of[caller.label]), "status": "ARCHIVED"}}


async def open_invoice_of_dana(world: World, caller: Caller) -> dict:
    await world.owner_charge()
    invoice = await world.api.ok(CREATE_INVOICE, {"input": world.money_input()}, world.owner.token)
    return {"input": {"invoiceId": invoice["createInvoice"]["invoice"]["id"], "reason": "Issued in error"}}


CREATE_CHART = "mutation($input: CreateChartInput!) { createChart(input: $input) { chart { id } } }"
UPDATE_CHART = "mutation($input: UpdateChartInput!) { updateChart(input: $input) { chart { id } } }"
GENERATE_STATEMENT = (
    "mutation($input: GenerateStatementInput!) { generateStatement(input: $input) { statement { id } } }"
)
CREATE_INVOICE = "mutation($input: CreateInvoiceInput!) { createInvoice(input: $input) { invoice { id } } }"
CREATE_WEBHOOK = (
    "mutation($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) { webhookEndpoint { id } } }"
)
NODE = "query($id: ID!) { node(id: $id) { id %s } }"
EDGES = "edges { node { id } }"

OPS: list[Op] = [
    # ------------------------------------------------------------ root query fields
    Op("viewer", "{ viewer { id } }", probe=present("viewer")),
    Op("viewerAccess", "{ viewerAccess { scopes } }", probe=present("viewerAccess")),
    Op("practice", "{ practice { id } }", probe=present("practice")),
    Op("plans", "{ plans { code } }", probe=present("plans")),
    Op("rateLimit", "{ rateLimit { remaining } }", probe=present("rateLimit")),
    Op("node: the practice", NODE % "", node_of("practice"), node_is, "Practice", outsider_gets(NULL)),
    Op("node: a plan", NODE % "", node_of("plan"), node_is, "Plan"),
    Op("node: a member (Dana)", NODE % "", node_of("dana"), node_is, "Member", outsider_gets(NULL)),
    Op("node: an invitation", NODE % "", node_of("invitation"), node_is, "Invitation", outsider_gets(NULL)),
    Op("node: Dana's chart", NODE % "", node_of("chart"), node_is, "Chart", chart_of_dana(NULL)),
    Op("node: the caller's own chart", NODE % "", own_chart_node, node_is, "Chart", own_chart(NULL)),
    Op("node: a note on Dana's chart", NODE % "", node_of("note"), node_is, "ChartNote", notes_of_dana(NULL, NULL)),
    Op("node: a subscription charge", NODE % "", node_of("charge"), node_is, "SubscriptionCharge", outsider_gets(NULL)),
    Op("node: an API token", NODE % "", node_of("api_token"), node_is, "ApiToken", outsider_gets(NULL)),
    Op("node: an audit event", NODE % "", node_of("audit_event"), node_is, "AuditEvent", outsider_gets(NULL)),
    Op("node: Dana's billing entry", NODE % "", node_of("entry"), node_is, "BillingEntry", billing_of_dana(NULL)),
    Op("node: Dana's statement", NODE % "", node_of("statement"), node_is, "Statement", billing_of_dana(NULL)),
    Op("node: Dana's invoice", NODE % "", node_of("invoice"), node_is, "Invoice", billing_of_dana(NULL)),
    Op("node: the event of Dana's entry", NODE % "", node_of("event"), node_is, "Event", event_of_danas_entry(NULL)),
    Op(
        "node: a webhook endpoint",
        NODE % "",
        node_of("webhook_endpoint"),
        node_is,
        "WebhookEndpoint",
        outsider_gets(NULL),
    ),
    Op(
        "node: a webhook delivery (of Dana's entry)",
        NODE % "",
        node_of("webhook_delivery"),
        node_is,
        "WebhookDelivery",
        event_of_danas_entry(NULL),
    ),
    # ------------------------------------------------------------ guarded and row-filtered nested fields
    Op(
        "practice.members",
        f"{{ practice {{ members {{ {EDGES} }} }} }}",
        probe=lists("practice.members.edges", "dana"),
        rule=outsider_gets(HIDDEN),
    ),
    Op(
        "practice.invitations",
        f"{{ practice {{ invitations {{ {EDGES} }} }} }}",
        probe=lists("practice.invitations.edges", "invitation"),
        rule=outsider_gets(HIDDEN),
    ),
    Op(
        "practice.charts",
        f"{{ practice {{ charts {{ {EDGES} }} }} }}",
        probe=lists("practice.charts.edges", "chart"),
        rule=chart_of_dana(HIDDEN),
    ),
    Op(
        "practice.charts(clinicianId: Dana)",
        f"query($dana: ID) {{ practice {{ charts(clinicianId: $dana) {{ {EDGES} }} }} }}",
        values(dana="dana"),
        lists("practice.charts.edges", "chart"),
        rule=chart_of_dana(HIDDEN),
    ),
    Op(
        "practice.subscription.licenses",
        "{ practice { subscription { licenses { member { id } } } } }",
        probe=lists("practice.subscription.licenses", "dana"),
        rule=outsider_gets(HIDDEN),
    ),
    Op(
        "practice.subscription.charges",
        f"{{ practice {{ subscription {{ charges {{ {EDGES} }} }} }} }}",
        probe=lists("practice.subscription.charges.edges", "charge"),
        rule=outsider_gets(HIDDEN),
    ),
    Op(
        "practice.subscription.seatQuote(memberId: Dana)",
        'query($member: ID) { practice { subscription { seatQuote(role: CLINICIAN, planCode: "erx-pro", memberId: '
        "$member) "
        "{ chargeNow { amount } } } } }",
        values(member="dana"),
        present("practice.subscription.seatQuote"),
        rule=outsider_gets(NOT_FOUND),
    ),
    Op(
        "practice.auditLog(filter: target)",
        f'query($t: ID) {{ practice {{ auditLog(filter: {{targetId: $t, action: "chart.created"}}) {{ {EDGES} }} }} }}',
        values(t="token_chart"),
        lists("practice.auditLog.edges", "audit_event"),
        rule=outsider_gets(HIDDEN),
    ),
    Op(
        "practice.apiTokens",
        f"{{ practice {{ apiTokens {{ {EDGES} }} }} }}",
        probe=lists("practice.apiTokens.edges", "api_token"),
        rule=outsider_gets(HIDDEN),
    ),
    Op(
        "practice.billing.currentBalance(Dana)",
        "query($dana: ID!) { practice { billing { currentBalance(filter: {clinicianIds: [$dana]}) { amount } } } }",
        values(dana="dana"),
        balance_of_dana,
        rule=naming_dana,
    ),
    Op(
        "practice.billing.history",
        f"{{ practice {{ billing {{ history {{ {EDGES} }} }} }} }}",
        probe=lists("practice.billing.history.edges", "entry"),
        rule=billing_list,
    ),
    Op(
        "practice.billing.statements",
        f"{{ practice {{ billing {{ statements {{ {EDGES} }} }} }} }}",
        probe=lists("practice.billing.statements.edges", "statement"),
        rule=billing_list,
    ),
    Op(
        "practice.billing.invoices",
        f"{{ practice {{ billing {{ invoices {{ {EDGES} }} }} }} }}",
        probe=lists("practice.billing.invoices.edges", "invoice"),
        rule=billing_list,
    ),
    Op(
        "Member.assignedCharts (Dana, via node)",
        NODE % f"... on Member {{ assignedCharts {{ {EDGES} }} }}",
        node_of("dana"),
        lists("node.assignedCharts.edges", "chart"),
        "Member",
        outsider_gets(NULL),
        chart_of_dana(HIDDEN),
    ),
    Op(
        "Member.email, permissions (Dana, via node)",
        NODE % "... on Member { email permissions effectivePermissions }",
        node_of("dana"),
        every("node.email", "node.permissions", "node.effectivePermissions"),
        "Member",
        outsider_gets(NULL),
        private_fields,
    ),
    Op(
        "Member.plan, traineeStatus, license (Dana, via node)",
        NODE % "... on Member { plan { code } traineeStatus license { reason } }",
        node_of("dana"),
        every("node.plan", "node.traineeStatus", "node.license"),
        "Member",
        outsider_gets(NULL),
        money_fields,
    ),
    Op(
        "Chart.notes (Dana's chart, via node)",
        NODE % f"... on Chart {{ notes {{ {EDGES} }} }}",
        node_of("chart"),
        lists("node.notes.edges", "note"),
        "Chart",
        chart_of_dana(NULL),
        notes_of_dana(NULL, FORBIDDEN),
    ),
    Op(
        "Chart.notes (the caller's own chart, via node)",
        NODE % f"... on Chart {{ notes {{ {EDGES} }} }}",
        own_chart_node,
        present("node.notes"),
        "Chart",
        own_chart(NULL),
    ),
    Op(
        "AuditEvent.apiToken (via node)",
        NODE % "... on AuditEvent { apiToken { id } }",
        node_of("audit_event"),
        present("node.apiToken"),
        "AuditEvent",
        outsider_gets(NULL),
        token_names_for_sessions,
    ),
    Op(
        "BillingEntry.chart (Dana's entry, via node)",
        NODE % "... on BillingEntry { chart { id } }",
        node_of("entry"),
        present("node.chart"),
        "BillingEntry",
        billing_of_dana(NULL),
        billing_chart,
    ),
    Op(
        "practice.events",
        f"{{ practice {{ events {{ {EDGES} }} }} }}",
        probe=lists("practice.events.edges", "event"),
        rule=event_of_danas_entry(HIDDEN),
    ),
    Op(
        "practice.webhookEndpoints",
        f"{{ practice {{ webhookEndpoints {{ {EDGES} }} }} }}",
        probe=lists("practice.webhookEndpoints.edges", "webhook_endpoint"),
        rule=outsider_gets(HIDDEN),
    ),
    Op(
        "WebhookEndpoint.deliveries, apiToken (via node)",
        NODE % "... on WebhookEndpoint { apiToken { id } deliveries { edges { node { id event { id } } } } }",
        node_of("webhook_endpoint"),
        lists("node.deliveries.edges", "webhook_delivery"),
        "WebhookEndpoint",
        outsider_gets(NULL),
        event_of_danas_entry(HIDDEN),
    ),
    PdfOp("GET /statements/{id}.pdf (Dana's)", "", rule=billing_of_dana(NOT_FOUND)),
    # ------------------------------------------------------------ mutations
    Op(
        "signUp",
        "mutation($input: SignUpInput!) { signUp(input: $input) { accessToken } }",
        new_practice,
        present("signUp"),
    ),
    Op(
        "logIn", "mutation($input: LogInInput!) { logIn(input: $input) { accessToken } }", dana_log_in, present("logIn")
    ),
    Op(
        "refreshSession",
        "mutation($input: RefreshSessionInput!) { refreshSession(input: $input) { accessToken } }",
        refresh_token,
        present("refreshSession"),
    ),
    # A credential mutation stands alone in its operation: beside any other root field the whole document is refused
    # before anything runs (security review item 1: the fields after logIn ran as the newly signed-in member).
    Op(
        "logIn beside setMemberPermissions and updateMember (one document)",
        "mutation($input: LogInInput!, $dana: ID!) { logIn(input: $input) { accessToken } "
        "setMemberPermissions(input: {memberId: $dana, permissions: [MANAGE_MEMBERS]}) { member { id } } "
        "updateMember(input: {memberId: $dana, role: ADMINISTRATOR}) { member { id } } }",
        dana_log_in_and_dana,
        refused=BAD_INPUT,
    ),
    Op(
        "signUp beside __typename",
        "mutation($input: SignUpInput!) { signUp(input: $input) { accessToken } __typename }",
        new_practice,
        refused=BAD_INPUT,
    ),
    Op(
        "refreshSession twice (two aliases)",
        "mutation($input: RefreshSessionInput!) { a: refreshSession(input: $input) { accessToken } "
        "b: refreshSession(input: $input) { accessToken } }",
        refresh_token,
        refused=BAD_INPUT,
    ),
    Op(
        "acceptInvitation beside createChart (through a fragment)",
        'mutation($input: AcceptInvitationInput!) { ...Join createChart(input: {patientName: "Pat"}) { chart { id } } '
        "} "
        "fragment Join on Mutation { acceptInvitation(input: $input) { accessToken } }",
        invitation_token,
        refused=BAD_INPUT,
    ),
    Op(
        "logOut",
        "mutation($input: LogOutInput!) { logOut(input: $input) { loggedOut } }",
        refresh_token,
        present("logOut"),
    ),
    Op(
        "requestPasswordReset",
        "mutation($input: RequestPasswordResetInput!) { requestPasswordReset(input: $input) { requested } }",
        reset_request,
        present("requestPasswordReset"),
    ),
    Op(
        "resetPassword",
        "mutation($input: ResetPasswordInput!) { resetPassword(input: $input) { accessToken } }",
        reset_token,
        present("resetPassword"),
    ),
    Op(
        "resetPassword beside __typename",
        "mutation($input: ResetPasswordInput!) { resetPassword(input: $input) { accessToken } __typename }",
        reset_token,
        refused=BAD_INPUT,
    ),
    Op(
        "changePassword (the caller's own)",
        "mutation($input: ChangePasswordInput!) { changePassword(input: $input) { member { id } } }",
        own_password_change,
        present("changePassword"),
        after=passwords_back,
    ),
    Op(
        "acceptInvitation",
        "mutation($input: AcceptInvitationInput!) { acceptInvitation(input: $input) { accessToken } }",
        invitation_token,
        present("acceptInvitation"),
    ),
    Op(
        "activateGroupPractice",
        "mutation { activateGroupPractice { practice { id } } }",
        solo_practices,
        present("activateGroupPractice"),
        after=group_practices,
    ),
    Op(
        "startSubscription",
        "mutation { startSubscription { charge { id } } }",
        probe=present("startSubscription"),
        first=True,
        after=remember_charge,
    ),
    Op(
        "updatePractice (the caller's own)",
        "mutation($input: UpdatePracticeInput!) { updatePractice(input: $input) { practice { id } } }",
        practice_name,
        present("updatePractice"),
        after=names_back,
    ),
    Op(
        "transferOwnership (to a clinician of the practice)",
        "mutation($input: TransferOwnershipInput!) { transferOwnership(input: $input) { practice { id } } }",
        ownership_target,
        present("transferOwnership"),
        rule=outsider_gets(NOT_FOUND),
        after=ownership_back,
    ),
    Op(
        "inviteMember",
        "mutation($input: InviteMemberInput!) { inviteMember(input: $input) { invitation { id } } }",
        invite,
        present("inviteMember"),
    ),
    Op(
        "resendInvitation",
        "mutation($input: InvitationInput!) { resendInvitation(input: $input) { invitation { id } } }",
        pending_invitation,
        present("resendInvitation"),
        rule=outsider_gets(NOT_FOUND),
    ),
    Op(
        "revokeInvitation",
        "mutation($input: InvitationInput!) { revokeInvitation(input: $input) { invitation { id } } }",
        pending_invitation,
        present("revokeInvitation"),
        rule=outsider_gets(NOT_FOUND),
    ),
    Op(
        "updateMember",
        "mutation($input: UpdateMemberInput!) { updateMember(input: $input) { member { id } } }",
        new_clinician(planCode="therapist-plus"),
        present("updateMember"),
        rule=outsider_gets(NOT_FOUND),
    ),
    Op(
        "setMemberPermissions",
        "mutation($input: SetMemberPermissionsInput!) { setMemberPermissions(input: $input) { member { id } } }",
        new_clinician(permissions=["VIEW_BILLING"]),
        present("setMemberPermissions"),
        rule=outsider_gets(NOT_FOUND),
    ),
    Op(
        "deactivateMember",
        "mutation($input: DeactivateMemberInput!) { deactivateMember(input: $input) { member { id } } }",
        new_clinician(),
        present("deactivateMember"),
        rule=outsider_gets(NOT_FOUND),
    ),
    Op(
        "reactivateMember",
        "mutation($input: ReactivateMemberInput!) { reactivateMember(input: $input) { member { id } } }",
        former_clinician,
        present("reactivateMember"),
        rule=outsider_gets(NOT_FOUND),
    ),
    Op("createChart", CREATE_CHART, new_patient, present("createChart")),
    Op(
        "createChart(clinicianIds: Eve)",
        CREATE_CHART,
        new_patient_for_eve,
        present("createChart"),
        rule=may_assign_others,
    ),
    Op(
        "assignChart (Dana's chart to Eve)",
        "mutation($input: ChartAssignmentInput!) { assignChart(input: $input) { chart { id } } }",
        danas_new_chart("eve"),
        present("assignChart"),
        rule=chart_of_dana(NOT_FOUND),
    ),
    Op(
        "unassignChart (Dana from her chart)",
        "mutation($input: ChartAssignmentInput!) { unassignChart(input: $input) { chart { id } } }",
        danas_new_chart("dana"),
        present("unassignChart"),
        rule=chart_of_dana(NOT_FOUND),
    ),
    Op(
        "addChartNote (Dana's chart)",
        "mutation($input: AddChartNoteInput!) { addChartNote(input: $input) { note { id } } }",
        note_on_danas_chart,
        present("addChartNote"),
        rule=notes_of_dana(NOT_FOUND, FORBIDDEN),
    ),
    Op(
        "addChartNote (the caller's own chart)",
        "mutation($input: AddChartNoteInput!) { addChartNote(input: $input) { note { id } } }",
        note_on_own_chart,
        present("addChartNote"),
        rule=own_chart(NOT_FOUND),
    ),
    Op(
        "updateChart (Dana's chart)",
        UPDATE_CHART,
        update_danas_chart,
        present("updateChart"),
        rule=lambda c: edits_chart(c, assigned=False),
    ),
    Op(
        "updateChart (the caller's own chart)",
        UPDATE_CHART,
        update_own_chart,
        present("updateChart"),
        rule=lambda c: edits_chart(c, assigned=True),
    ),
    Op(
        "recordCharge (for Dana)", RECORD_CHARGE, charge_for_dana("10.00"), present("recordCharge"), rule=bills_for_dana
    ),
    Op(
        "recordCharge (for oneself, own chart)",
        RECORD_CHARGE,
        charge_for_self,
        present("recordCharge"),
        rule=bills_for_self,
    ),
    Op(
        "recordAdjustment (for Dana)",
        "mutation($input: RecordAdjustmentInput!) { recordAdjustment(input: $input) { entry { id } } }",
        charge_for_dana("-1.00"),
        present("recordAdjustment"),
        rule=bills_for_dana,
    ),
    Op(
        "recordPayment (for Dana)",
        "mutation($input: RecordPaymentInput!) { recordPayment(input: $input) { entry { id } } }",
        money_move(amount="1.00", occurredOn=today()),
        present("recordPayment"),
        rule=bills_for_dana,
    ),
    Op(
        "recordRefund (for Dana)",
        "mutation($input: RecordRefundInput!) { recordRefund(input: $input) { entry { id } } }",
        money_move(amount="1.00", occurredOn=today()),
        present("recordRefund"),
        rule=bills_for_dana,
    ),
    Op(
        "generateStatement (for Dana)",
        GENERATE_STATEMENT,
        money_move(periodStart=today(), periodEnd=today()),
        present("generateStatement"),
        rule=bills_for_dana,
    ),
    Op("createInvoice (for Dana)", CREATE_INVOICE, uninvoiced_charge, present("createInvoice"), rule=bills_for_dana),
    Op(
        "voidInvoice (Dana's)",
        "mutation($input: VoidInvoiceInput!) { voidInvoice(input: $input) { invoice { id status } } }",
        open_invoice_of_dana,
        present("voidInvoice"),
        rule=voids_invoice_of_dana,
    ),
    Op(
        "createApiToken",
        "mutation($input: CreateApiTokenInput!) { createApiToken(input: $input) { token } }",
        new_token_input,
        present("createApiToken"),
    ),
    Op(
        "revokeApiToken",
        "mutation($input: ApiTokenInput!) { revokeApiToken(input: $input) { apiToken { id } } }",
        live_api_token,
        present("revokeApiToken"),
        rule=outsider_gets(NOT_FOUND),
    ),
    Op(
        "createWebhookEndpoint",
        CREATE_WEBHOOK,
        new_webhook,
        present("createWebhookEndpoint"),
        rule=outsider_gets(NOT_FOUND),
    ),
    Op(
        "deleteWebhookEndpoint",
        "mutation($input: WebhookEndpointInput!) { deleteWebhookEndpoint(input: $input) { webhookEndpoint { id } } }",
        live_webhook,
        present("deleteWebhookEndpoint"),
        rule=outsider_gets(NOT_FOUND),
    ),
]


def test_every_root_field_and_mutation_has_an_operation():
    covered = {c for op in OPS for c in op.coordinates()}
    roots = {c for c in GUARDS if c.split(".")[0] in ("Query", "Mutation")}
    guarded = {c for c, g in GUARDS.items() if not g.is_open}
    assert roots - covered == set(), "operations missing from OPS"
    assert guarded - covered == set(), "guarded fields missing from OPS"
    assert {t for op in OPS if op.node_type for t in [op.node_type]} == node_registry.registered_types()


# ====================================================================== running it


async def fingerprint() -> str:
    """A digest of every row of every table (one statement), but the audit log's (denials are recorded there) and the
    tokens' last use."""
    selects = []
    for model in sorted(Tortoise.apps.get_models_iterable(), key=lambda m: m._meta.db_table):
        if model in (AuditEvent, AuditHead):
            continue
        columns = sorted(c for c in model._meta.fields_db_projection.values() if c != "last_used_at")
        text = " || '|' || ".join(f"COALESCE(CAST(\"{c}\" AS TEXT), '~')" for c in columns)
        selects.append(f"SELECT '{model._meta.db_table}' || ':' || {text} AS r FROM \"{model._meta.db_table}\"")
    rows = await AuditEvent._meta.db.execute_query_dict(" UNION ALL ".join(selects))
    return hashlib.sha256("\n".join(sorted(row["r"] for row in rows)).encode()).hexdigest()


@dataclass(frozen=True)
class Case:
    op: str
    caller: str
    expected: str
    outcome: str
    detail: str = ""


async def run_op(world: World, op: Op) -> list[Case]:
    """Every caller through one operation. The cases that must write nothing (reads, refusals) run together between
    two fingerprints of the database; then each case that writes runs on its own, right after its setup."""
    expected = {c.label: op.expected(c) for c in CALLERS}
    quiet = [c for c in CALLERS if not op.mutation or expected[c.label] != ALLOWED]
    prepared = [(c, await op.setup(world, c) if op.setup else {}) for c in quiet]
    before = await fingerprint()
    outcomes = await asyncio.gather(*(op.outcome(world, c, variables) for c, variables in prepared))
    cases = [
        Case(op.label, c.label, expected[c.label], outcome, detail)
        for c, (outcome, detail) in zip(quiet, outcomes, strict=True)
    ]
    if await fingerprint() != before:
        # Blame the cases that went wrong anyway, else every case of the batch.
        suspects = [case for case in cases if case.outcome != case.expected] or cases
        cases = [
            replace(case, outcome=f"{case.outcome}, and data changed") if case in suspects else case for case in cases
        ]
    for c in CALLERS:
        if c not in quiet:
            outcome, detail = await op.outcome(world, c, await op.setup(world, c) if op.setup else {})
            cases.append(Case(op.label, c.label, expected[c.label], outcome, detail))
    if op.after:
        await op.after(world)
    return cases


async def run_matrix(world: World) -> list[Case]:
    cases = []
    for op in sorted(OPS, key=lambda o: not o.first):
        cases += await run_op(world, op)
    return cases


async def test_authorization_matrix(api):
    world = await build_world(api)
    cases = await run_matrix(world)
    wrong = [c for c in cases if c.outcome != c.expected]
    assert not wrong, "authorization matrix: outcomes differ from the guards and row rules:\n" + "\n".join(
        f"- {c.op} | {c.caller}: expected {c.expected}, got {c.outcome} {c.detail}" for c in wrong
    )
    document = render(cases)
    if WRITE_DOCS:
        DOC.parent.mkdir(exist_ok=True)
        DOC.write_text(document)
    committed = DOC.read_text() if DOC.exists() else ""
    assert committed == document, (
        f"docs/authorization.md is out of date: regenerate it with `{REGENERATE}` and commit it"
    )


# ====================================================================== the document


def render(cases: list[Case]) -> str:
    outcome = {(c.op, c.caller): c.outcome for c in cases}
    classes = classification()
    lines = [
        "# Authorization matrix",
        "",
        "Generated by `tests/test_authorization_matrix.py` from a run of every operation, through HTTP, as every kind",
        f"of caller; do not edit. The test fails when this file differs from the run: `{REGENERATE}`.",
        "",
        "Each cell is what the caller got: `allowed`; an error code (`FORBIDDEN`, `UNAUTHENTICATED`, `NOT_FOUND`,",
        "`BAD_USER_INPUT`); `null` (the object or field came back null without an error: `node` for anything the",
        "caller may not reach, private member fields); `hidden` (the list or sum answered without the row: another",
        "practice's rows, or rows the caller may not see). The test derives each expected outcome from the directives",
        "in the schema and the contract's token rules, then from the row rules, and checks that every refused",
        "mutation changed nothing.",
        "",
        "The practice: its owner; clinicians Dana (whose chart, note, billing entry, statement and invoice the rows",
        "below target) and Eve; one clinician and one administrator for each set of grants (none, or one",
        "permission); partner API tokens created by the owner (no scope, or one scope). Outsiders: the owner of",
        "another group practice using this practice's ids, and a request without credentials.",
        "",
    ]
    lines += [
        "## Operations and their directives",
        "",
        "| operation | directives on its fields, in order |",
        "|---|---|",
    ]
    for op in OPS:
        guards = []
        for c in op.coordinates():
            if c in GUARDS and not GUARDS[c].is_open:
                guards.append(f"`{c}` {GUARDS[c].describe()}")
            if c == "Query.node" and op.node_type:
                guards.append(f"node({op.node_type}) {node_guard(op.node_type).describe() or 'none'}")
        lines.append(f"| {op.label} | {'; '.join(guards) or 'none'} |")
    lines.append("")
    for table, title in TABLES.items():
        callers = [c for c in CALLERS if c.table == table]
        headers = [c.label.split(" ", 1)[1] if " +" in c.label else c.label for c in callers]
        lines += [f"## {title}", "", "| operation | " + " | ".join(headers) + " |", "|---" * (len(callers) + 1) + "|"]
        for op in OPS:
            lines.append(f"| {op.label} | " + " | ".join(outcome[(op.label, c.label)] for c in callers) + " |")
        lines.append("")
    lines += ["## Field classification", "", "Every field of every object type, as the test classifies it.", ""]
    for kind in ("guarded", "public", "decided by its resolver"):
        lines += [
            f"### {kind.capitalize()}",
            "",
            "| field | " + ("directives" if kind == "guarded" else "why") + " |",
            "|---|---|",
        ]
        lines += [f"| `{c}` | {reason} |" for c, (k, reason) in classes.items() if k == kind]
        lines.append("")
    lines += ["### Object data", "", "| type | fields | why |", "|---|---|---|"]
    by_type: dict[str, list[str]] = {}
    reasons: dict[str, str] = {}
    for coordinate, (kind, reason) in classes.items():
        if kind == "object data":
            type_name, name = coordinate.split(".")
            by_type.setdefault(type_name, []).append(name)
            reasons[type_name] = reason
    lines += [f"| `{t}` | {' '.join(names)} | {reasons[t]} |" for t, names in by_type.items()]
    return "\n".join(lines) + "\n"


# ====================================================================== regressions (defects the matrix found)


async def test_a_token_without_read_charts_gets_no_chart_through_billing_rows(api):
    """BillingEntry/Statement/Invoice.chart gave a partner token holding READ_BILLING but not READ_CHARTS the whole
    chart (date of birth, email, phone). A chart is reached only with READ_CHARTS, however it is reached."""
    group = await make_group(api)
    await charge(api, group.owner, group.ann_chart, group.ann, "80.00", on=today())
    selection = {"clinicianIds": [group.ann.id], "chartId": group.ann_chart}
    await api.ok(
        GENERATE_STATEMENT, {"input": {**selection, "periodStart": today(), "periodEnd": today()}}, group.owner.token
    )
    await api.ok(CREATE_INVOICE, {"input": selection}, group.owner.token)
    query = """{ practice { billing {
        history { edges { node { patientName chart { id dateOfBirth } } } }
        statements { edges { node { chart { id } } } }
        invoices { edges { node { chart { id } } } } } } }"""

    def charts(data: dict) -> list:
        billing = data["practice"]["billing"]
        return [
            edge["node"]["chart"] for name in ("history", "statements", "invoices") for edge in billing[name]["edges"]
        ]

    billing_only = await insert_api_token(group.owner.row, (TokenScope.READ_BILLING,))
    data = await api.ok(query, token=billing_only)
    assert data["practice"]["billing"]["history"]["edges"][0]["node"]["patientName"] == "Pat Annsson"
    assert charts(data) == [None, None, None]

    with_charts = await insert_api_token(group.owner.row, (TokenScope.READ_BILLING, TokenScope.READ_CHARTS))
    assert {chart["id"] for chart in charts(await api.ok(query, token=with_charts))} == {group.ann_chart}


async def test_a_token_does_not_exercise_management_permissions_on_member_fields(api):
    """A partner token of the owner holding READ_MEMBERS read every member's email, permission grants, plan, trainee
    status and license, as if it held MANAGE_MEMBERS and MANAGE_SUBSCRIPTION (which no scope carries, and whose
    fields are closed to tokens). It now sees those fields of its creator only, like any member."""
    group = await make_group(api)
    query = """query($id: ID!) { viewer { email plan { code } }
        node(id: $id) { ... on Member { name email permissions effectivePermissions plan { code } traineeStatus license
        { reason } } } }"""
    private = ("email", "permissions", "effectivePermissions", "plan", "traineeStatus", "license")

    session = await api.ok(query, {"id": group.ann.id}, group.owner.token)
    assert all(session["node"][name] is not None for name in private)

    token = await insert_api_token(group.owner.row, (TokenScope.READ_MEMBERS,))
    data = await api.ok(query, {"id": group.ann.id}, token)
    assert data["node"]["name"] == "Ann Clinician"
    assert [data["node"][name] for name in private] == [None] * len(private)
    assert data["viewer"] == {"email": "owner@example.com", "plan": {"code": "erx-lite"}}
