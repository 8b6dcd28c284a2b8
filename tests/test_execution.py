"""The fast execution path (schema/execution.py) answers exactly as stock graphql-core execution does.

Every query here runs through two GraphQL endpoints over the same database: one on ``build_schema(fast_execution=True)``
(what the server runs) and one on ``build_schema(fast_execution=False)``. Their whole responses must be equal:
data, and errors with their messages, paths, locations and codes. The queries are the screens the bench replays
and the cases where the fast path has to hand over to the stock code: denied fields, nulls in non-null fields
(null propagation through objects and lists), exceptions in plain methods, aliases, fragments, variables.
"""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from bench import screens
from models.enums import Role, TokenScope
from resolvers import limits
from schema import build_schema
from schema import members as member_schema
from server.graphql import GraphQLApp
from tests import factories
from tests.factories_billing import charge, make_group, pay

MEMBER_FIELDS = (
    "id name role status email plan { code name monthlyPrice { amount currency } } permissions effectivePermissions"
)

CASES = {
    "dashboard": (screens.DASHBOARD, {}),
    "chart list": (screens.CHART_LIST, {"first": 2}),
    "billing history": (screens.BILLING_HISTORY, {}),
    "balances": (screens.clinician_balances(2), None),  # variables filled in per group
    "private fields of others are null": (
        f"{{ practice {{ members {{ edges {{ node {{ {MEMBER_FIELDS} }} }} }} }} }}",
        {},
    ),
    "aliases, fragments, variables": (
        """query($n: Int, $withEmail: Boolean!) {
             p: practice {
               ...P
               m: members(first: $n) {
                 total: totalCount
                 edges { node { ... on Member { id n: name email @include(if: $withEmail) } } ...M }
               }
             }
             again: practice { kind }
           }
           fragment P on Practice { id name kind }
           fragment M on MemberEdge { node { role r2: role } }""",
        {"n": 3, "withEmail": True},
    ),
    "node and typename": (
        'query($id: ID!) { node(id: $id) { __typename id ... on Member { name plan { name } } } bad: node(id: "nope") '
        "{ id } }",
        None,
    ),
    "bad argument": ("{ practice { members(first: 500) { totalCount } charts(first: 1) { totalCount } } }", {}),
    "assigned clinicians and notes": (
        "{ practice { charts { edges { node { patientName assignedClinicians { name email } notes { totalCount } } } } "
        "} }",
        {},
    ),
    "history with creators and charts": (
        "{ practice { billing { history { edges { node { kind amount { amount } clinician { name } createdBy { name "
        "plan { code } } chart { patientName } } } } } } }",
        {},
    ),
}


@pytest.fixture
async def endpoints(app):
    """POST a query to the fast or the stock endpoint: ``await post(fast, query, variables, token)``."""

    def endpoint(fast: bool) -> GraphQLApp:
        return GraphQLApp(
            build_schema(fast_execution=fast),
            settings=app.state.settings,
            clock=app.state.clock,
            codec=app.state.codec,
            limit_store=limits.MemoryStore(),
        )

    both = Starlette(
        routes=[Route("/fast", endpoint(True), methods=["POST"]), Route("/stock", endpoint(False), methods=["POST"])]
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=both), base_url="http://test") as client:

        async def post(fast: bool, query: str, variables: dict | None, token: str | None) -> dict:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            response = await client.post(
                "/fast" if fast else "/stock", json={"query": query, "variables": variables}, headers=headers
            )
            return response.json()

        yield post


@pytest.fixture
async def group(api):
    group = await make_group(api)
    await charge(api, group.owner, group.ann_chart, group.ann, "120.00")
    await charge(api, group.owner, group.shared_chart, group.ben, "80.50", description="Family session")
    await pay(api, group.owner, group.shared_chart, group.ben, "30.00")
    await api.ok(
        "mutation($i: AddChartNoteInput!) { addChartNote(input: $i) { note { id } } }",
        {"i": {"chartId": group.ann_chart, "body": "Doing better."}},
        group.owner.token,
    )
    group.admin = await group.member("Ada Admin", Role.ADMINISTRATOR)
    group.partner = await factories.insert_api_token(group.owner.row, (TokenScope.READ_BILLING,))
    return group


def callers(group) -> dict[str, str | None]:
    return {
        "owner": group.owner.token,
        "clinician": group.ann.token,
        "administrator": group.admin.token,
        "partner token": group.partner,
        "anonymous": None,
    }


def variables_for(name: str, variables: dict | None, group) -> dict:
    if variables is not None:
        return variables
    if name == "balances":
        return screens.clinician_balance_variables([group.ann.id, group.ben.id])
    return {"id": group.ben.id}


async def assert_same(endpoints, query: str, variables: dict, token: str | None) -> dict:
    fast = await endpoints(True, query, variables, token)
    stock = await endpoints(False, query, variables, token)
    assert fast == stock
    return fast


@pytest.mark.parametrize("case", list(CASES))
async def test_every_caller_gets_the_stock_answer(endpoints, group, case):
    query, variables = CASES[case]
    answers = []
    for caller, token in callers(group).items():
        answers.append((caller, await assert_same(endpoints, query, variables_for(case, variables, group), token)))
    # Not vacuous: somebody gets data, and the cases meant to fail do fail for somebody.
    assert any(a.get("data") for _, a in answers)
    assert any(a.get("errors") for _, a in answers)


async def test_nulls_in_non_null_fields_propagate_as_in_stock_execution(endpoints, group, monkeypatch):
    """A member who cannot be built is a null where the schema says Member!: in lists, in edges and in entries."""
    of = member_schema.Member.of.__func__
    ben = group.ben.row.id
    monkeypatch.setattr(
        member_schema.Member, "of", classmethod(lambda cls, row: None if row.id == ben else of(cls, row))
    )
    for case in ("dashboard", "assigned clinicians and notes", "history with creators and charts"):
        query, variables = CASES[case]
        answer = await assert_same(endpoints, query, variables_for(case, variables, group), group.owner.token)
        # The null is an unexpected TypeError inside graphql-core: masked (INTERNAL), located at the null field.
        assert [e["extensions"]["code"] for e in answer.get("errors", ())] == ["INTERNAL"], case


async def test_exceptions_in_plain_methods_are_masked_as_in_stock_execution(endpoints, group, monkeypatch):
    from resolvers import members

    def broken(viewer, member):
        raise RuntimeError("boom")

    monkeypatch.setattr(members, "can_see_private", broken)
    query, variables = CASES["private fields of others are null"]
    answer = await assert_same(endpoints, query, variables, group.owner.token)
    assert {e["extensions"]["code"] for e in answer["errors"]} == {"INTERNAL"}
    assert all(e["path"][-1] in ("email", "permissions", "effectivePermissions", "plan") for e in answer["errors"])


async def test_a_plan_with_a_null_name_nulls_the_plan(endpoints, group, monkeypatch):
    """A null leaf in a non-null field of a nullable object: the object is null, with the stock error."""
    from schema import plans

    original = plans.Plan.of.__func__

    def nameless(cls, plan):
        built = original(cls, plan)
        built.name = None
        return built

    monkeypatch.setattr(plans.Plan, "of", classmethod(nameless))
    query, variables = CASES["dashboard"]
    answer = await assert_same(endpoints, query, variables, group.owner.token)
    assert [e["path"][-2:] for e in answer["errors"]] == [["plan", "name"]] * 3  # the owner, Ann and Ben have plans
    assert [edge["node"]["plan"] for edge in answer["data"]["practice"]["members"]["edges"]] == [None] * 4
