"""Security review, item 1 (critical): one operation could switch identity halfway and write into the first practice.

The attack: an administrator of practice A with no permissions sent, in one mutation document, ``recordCharge`` (to
load rows of A into the request's loaders), ``logIn`` into a practice B she owns, then ``setMemberPermissions`` and
``updateMember`` on A's members: the fields after ``logIn`` ran as B's owner against rows cached for A.

What holds now, each proven through HTTP with nothing changed by a refusal:
- a credential mutation beside any other root field is refused as a whole before anything runs;
- the request's viewer cannot change (Context is frozen; the payload shows the signed-in member by itself);
- every get_/require_ helper refuses a row of another practice even when a loader hands one over;
- every document that reaches execution is charged, credential mutations included (anonymous: per address).
(Items 2-12 have their tests beside their areas: tests/test_security_*.py.)
"""

from __future__ import annotations

import dataclasses

import pytest

from models import AuditEvent, Member, Session
from models.enums import Permission, Role
from resolvers import ids
from resolvers import members as member_rules
from tests.conftest import PASSWORD
from tests.factories_charts import add_member, create_chart, owner

LOG_IN = (
    'logIn(input: {practiceSlug: "<slug>", email: "<email>", password: "<password>"}) { accessToken member { id } }'
)
SET_PERMISSIONS = 'setMemberPermissions(input: {memberId: "<member>", permissions: [<permissions>]}) { member { id } }'
UPDATE_MEMBER = 'updateMember(input: {memberId: "<member>", role: ADMINISTRATOR}) { member { id role } }'
DEACTIVATE = 'deactivateMember(input: {memberId: "<member>"}) { member { id } }'
RECORD_CHARGE = (
    'recordCharge(input: {chartId: "<chart>", clinicianId: "<member>", amount: "10.00", occurredOn: "2026-03-02", '
    'description: "x"}) { entry { id } }'
)
SIGN_UP = (
    'signUp(input: {practiceName: "Z", name: "Z", email: "z@z.example", password: "<password>", planCode: "erx-lite"})'
    " { accessToken }"
)
REFRESH = 'refreshSession(input: {refreshToken: "nope"}) { accessToken }'
ACCEPT = 'acceptInvitation(input: {token: "nope", name: "Z", password: "<password>"}) { accessToken }'
ALL_PERMISSIONS = ", ".join(p.value for p in Permission)


def fill(text: str, **values: str) -> str:
    """``text`` with each ``<name>`` replaced by its value (GraphQL's braces make %-formatting and f-strings noisy)."""
    for name, value in values.items():
        text = text.replace(f"<{name}>", value)
    return text


async def _snapshot() -> tuple:
    """Everything the attack could change: members' roles and grants, sessions, audit events."""
    members = sorted((str(m.id), m.role.value, tuple(m.permissions or ()), m.status.value) for m in await Member.all())
    return members, await Session.all().count(), await AuditEvent.all().count()


@pytest.fixture
async def attack(api):
    """Practice A (owner, clinician with a chart, an administrator with no permissions) and practice B, owned by
    the same person as A's administrator (another account: an account belongs to one practice)."""
    a = await owner(api, "Practice A", "owner@a.example")
    clinician = await add_member(api, a, "clinician@a.example")
    admin = await add_member(api, a, "admin@a.example", role=Role.ADMINISTRATOR)
    chart = await create_chart(api, a.token, clinicianIds=[clinician.id])
    b = await owner(api, "Practice B", "admin@a.example")
    slug_b = (await api.ok("{ practice { slug } }", token=b.token))["practice"]["slug"]
    return {"a": a, "clinician": clinician, "admin": admin, "chart": chart, "b": b, "slug_b": slug_b}


async def test_item1_identity_switch_document_is_refused_and_changes_nothing(api, attack):
    admin, clinician = attack["admin"], attack["clinician"]
    document = (
        "mutation { "
        + " ".join(
            [
                fill(RECORD_CHARGE, chart=attack["chart"]["id"], member=clinician.id),
                fill(LOG_IN, slug=attack["slug_b"], email="admin@a.example", password=PASSWORD),
                fill(SET_PERMISSIONS, member=admin.id, permissions=ALL_PERMISSIONS),
                fill(UPDATE_MEMBER, member=clinician.id),
            ]
        )
        + " }"
    )
    before = await _snapshot()
    code, body = await api.error(document, token=admin.token)
    assert code == "BAD_USER_INPUT"
    assert "logIn" in body["errors"][0]["message"]
    assert body.get("data") is None
    assert await _snapshot() == before
    assert (await Member.get(id=admin.member.id)).permissions == []
    assert (await Member.get(id=clinician.member.id)).role == Role.CLINICIAN


@pytest.mark.parametrize(
    "shape",
    [
        "mutation { <cred> __typename }",
        "mutation { __typename <cred> }",
        "mutation { first: <cred> second: <cred> }",
        "mutation { <cred> activateGroupPractice { practice { id } } }",
        "mutation { ...F } fragment F on Mutation { <cred> __typename }",
        'mutation { ... on Mutation { <cred> } createApiToken(input: {name: "x", scopes: [READ_CHARTS]}) { secret } }',
        "mutation { <cred> logOut(input: {}) { loggedOut } }",
        "mutation { a: __typename ...F } fragment F on Mutation { ...G } fragment G on Mutation { <cred> }",
    ],
)
@pytest.mark.parametrize("credential", ["logIn", "signUp", "refreshSession", "acceptInvitation"])
async def test_item1_credential_mutation_beside_any_root_field_is_refused(api, attack, shape, credential):
    template = {"logIn": LOG_IN, "signUp": SIGN_UP, "refreshSession": REFRESH, "acceptInvitation": ACCEPT}[credential]
    cred = fill(template, slug=attack["slug_b"], email="admin@a.example", password=PASSWORD)
    before = await _snapshot()
    code, body = await api.error(fill(shape, cred=cred), token=attack["admin"].token)
    assert code == "BAD_USER_INPUT", body
    assert body.get("data") is None
    assert await _snapshot() == before


async def test_item1_credential_mutation_alone_still_works_and_shows_the_signed_in_member(api, attack):
    """Alone, logIn works for any caller; its payload shows the member it signed in (their private fields) while
    the request itself stays the caller's: the payload's member is shown to itself, not to the old viewer."""
    data = await api.ok(
        fill(
            'mutation { logIn(input: {practiceSlug: "<slug>", email: "admin@a.example", password: "<password>"}) '
            "{ accessToken member { id email permissions } } }",
            slug=attack["slug_b"],
            password=PASSWORD,
        ),
        token=attack["admin"].token,
    )
    assert data["logIn"]["member"]["id"] == ids.encode("Member", attack["b"].member.id)
    assert data["logIn"]["member"]["email"] == "admin@a.example"
    assert data["logIn"]["member"]["permissions"] == []
    viewer = await api.ok("{ viewer { id } }", token=data["logIn"]["accessToken"])
    assert viewer["viewer"]["id"] == ids.encode("Member", attack["b"].member.id)


def test_item1_the_request_context_is_frozen(settings):
    from resolvers.clock import Clock
    from resolvers.context import Context

    ctx = Context(settings=settings, clock=Clock(), codec=None, request_id="r")  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.viewer = None  # type: ignore[misc]


async def test_item1_a_foreign_row_in_the_loader_is_refused_by_writes(api, attack, monkeypatch):
    """A loader that (by some future bug) hands over a member of another practice: the write still refuses it."""
    foreign = attack["b"].member
    a = attack["a"]

    async def poisoned(ctx, keys):
        rows = {m.id: m for m in await Member.filter(id__in=list(keys))}
        return [rows.get(k) for k in keys]

    monkeypatch.setattr(member_rules, "load_members", poisoned)
    before = await _snapshot()
    foreign_id = ids.encode("Member", foreign.id)
    for document in (
        SET_PERMISSIONS,
        UPDATE_MEMBER,
        RECORD_CHARGE,
        DEACTIVATE,
    ):
        filled = fill(document, member=foreign_id, permissions="VIEW_ALL_CHARTS", chart=attack["chart"]["id"])
        code, body = await api.error("mutation { " + filled + " }", token=a.token)
        assert code == "NOT_FOUND", body
    assert await _snapshot() == before
    # Reads refuse it too: node() of the foreign member is null.
    data = await api.ok(fill('{ node(id: "<member>") { id } }', member=foreign_id), token=a.token)
    assert data["node"] is None


async def test_item1_anonymous_credential_mutations_are_charged_to_the_address(api, attack, settings):
    """Credential mutations reach execution like any document: an anonymous caller pays from its address's budget
    (reported in the headers), and once it is spent the next one is refused before it runs."""
    log_in = "mutation { " + fill(LOG_IN, slug=attack["slug_b"], email="admin@a.example", password=PASSWORD) + " }"
    first = await api.client.post("/graphql", json={"query": log_in})
    second = await api.client.post("/graphql", json={"query": log_in})
    remaining = int(second.headers["X-RateLimit-Remaining"])
    assert remaining == int(first.headers["X-RateLimit-Remaining"]) - 1

    sessions = await Session.all().count()
    object.__setattr__(settings, "rate_limit_points", settings.rate_limit_points - remaining)  # spent from here on
    refused = await api.client.post("/graphql", json={"query": log_in})
    assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert "Retry-After" in refused.headers
    assert await Session.all().count() == sessions  # the log-in did not run


async def test_item1_a_member_of_another_practice_is_not_found_in_writes(api, attack):
    """Without any poisoning: ids of another practice are NOT_FOUND in every member write."""
    foreign_id = ids.encode("Member", attack["b"].member.id)
    before = await _snapshot()
    document = "mutation { " + fill(SET_PERMISSIONS, member=foreign_id, permissions="VIEW_ALL_CHARTS") + " }"
    code, _ = await api.error(document, token=attack["a"].token)
    assert code == "NOT_FOUND"
    assert await _snapshot() == before


async def test_v3_mutations_refused_together_in_one_document_change_nothing(api):
    """Every mutation v3 added, sent by an administrator without permissions in one document (each under an alias):
    each is refused on its own (FORBIDDEN, or NOT_FOUND for rows the caller cannot reach), and nothing changes."""
    from tests import factories
    from tests.factories_billing import CREATE_INVOICE, charge, make_group
    from tests.platform_support import create_token
    from tests.test_authorization_matrix import fingerprint

    group = await make_group(api)
    admin = await factories.add_member(api, group.owner.slug, "admin@calm.example.com", role=Role.ADMINISTRATOR)
    await charge(api, group.owner, group.ann_chart, group.ann, "40.00")
    selection = {"chartId": group.ann_chart, "clinicianIds": [group.ann.id]}
    invoice = (await api.ok(CREATE_INVOICE, {"i": selection}, group.owner.token))["createInvoice"]["invoice"]
    token = await create_token(api, group.owner.token, ["READ_CHARTS"])
    endpoint = (
        await api.ok(
            'mutation($t: ID!) { createWebhookEndpoint(input: {apiTokenId: $t, url: "http://127.0.0.1:9/hook", '
            "eventTypes: [CHART_CREATED]}) { webhookEndpoint { id } } }",
            {"t": token["apiToken"]["id"]},
            group.owner.token,
        )
    )["createWebhookEndpoint"]["webhookEndpoint"]["id"]
    document = fill(
        """mutation {
          a: updateChart(input: {chartId: "<chart>", patientName: "Renamed"}) { chart { id } }
          b: voidInvoice(input: {invoiceId: "<invoice>", reason: "mine now"}) { invoice { id } }
          c: reactivateMember(input: {memberId: "<ben>"}) { member { id } }
          d: transferOwnership(input: {memberId: "<ann>", password: "<password>"}) { practice { id } }
          e: updatePractice(input: {name: "Taken Over"}) { practice { id } }
          f: createWebhookEndpoint(
            input: {apiTokenId: "<token>", url: "http://127.0.0.1:9/x", eventTypes: [CHART_CREATED]}
          ) { secret }
          g: deleteWebhookEndpoint(input: {webhookEndpointId: "<endpoint>"}) { webhookEndpoint { id } }
        }""",
        chart=group.ann_chart,
        invoice=invoice["id"],
        ben=group.ben.id,
        ann=group.ann.id,
        password=PASSWORD,
        token=token["apiToken"]["id"],
        endpoint=endpoint,
    )
    before = await fingerprint()
    body = await api.post(document, token=admin.token)
    refused = {error["path"][0]: error["extensions"]["code"] for error in body["errors"]}
    assert refused.keys() == set("abcdefg"), body
    assert set(refused.values()) <= {"FORBIDDEN", "NOT_FOUND"}, refused
    assert all(value is None for value in body["data"].values())
    assert await fingerprint() == before
