"""The billing rules called directly (resolvers/billing.require_billable and require_single_clinician), beside the
HTTP tests in tests/test_billing.py and the authorization matrix: each refusal, in the order the rule checks."""

from __future__ import annotations

import pytest

from auth.viewer import Viewer
from errors import BadInput, Forbidden, NotFound, SingleClinicianRequired
from models import Practice
from models.enums import Permission, Role
from resolvers import billing, ids
from resolvers.clock import Clock
from resolvers.context import Context
from tests import factories
from tests.factories_billing import add_chart, make_group


def context_of(settings, member, practice) -> Context:
    return Context(settings=settings, clock=Clock(), codec=None, request_id="test", viewer=Viewer(member, practice))  # type: ignore[arg-type]


@pytest.fixture
async def world(api, settings):
    group = await make_group(api)
    cora = await factories.add_member(
        api, group.owner.slug, "cora@calm.example.com", permissions=(Permission.MANAGE_BILLING,)
    )
    admin = await factories.add_member(api, group.owner.slug, "adam@calm.example.com", role=Role.ADMINISTRATOR)
    other = await make_group(api, practice="Elsewhere", email="else@example.com")
    unassigned = await add_chart(group.practice, "Nobody Assigned", created_by=group.owner.row.id)
    practice = await Practice.get(id=group.practice.id)

    def as_(account) -> Context:
        return context_of(settings, account.row, practice)

    return group, cora, admin, other, unassigned, as_


async def test_require_billable_answers_the_clinician_and_chart(world):
    group, cora, _, _, _, as_ = world
    for caller in (group.ann, group.owner, cora):
        clinician, chart = await billing.require_billable(as_(caller), group.ann.id, group.ann_chart, field="f")
        assert (clinician.id, ids.encode("Chart", chart.id)) == (group.ann.row.id, group.ann_chart)


async def test_require_billable_refusals_in_order(world):
    group, cora, admin, other, unassigned, as_ = world
    # A member of another practice: NOT_FOUND, before anything else.
    with pytest.raises(NotFound):
        await billing.require_billable(as_(group.owner), other.ann.id, group.ann_chart, field="f")
    # Someone else without MANAGE_BILLING: FORBIDDEN.
    with pytest.raises(Forbidden):
        await billing.require_billable(as_(group.ben), group.ann.id, group.ann_chart, field="f")
    # A chart the caller cannot find: NOT_FOUND (Ben is not assigned to Ann's chart).
    with pytest.raises(NotFound):
        await billing.require_billable(as_(group.ben), group.ben.id, group.ann_chart, field="f")
    # An administrator is no clinician: BAD_USER_INPUT naming the field.
    with pytest.raises(BadInput) as refused:
        await billing.require_billable(as_(group.owner), admin.id, group.ann_chart, field="input.clinicianId")
    assert refused.value.extensions["field"] == "input.clinicianId"
    # Finding every chart is not treating it: Cora (MANAGE_BILLING) finds the unassigned chart but is not its clinician.
    with pytest.raises(BadInput):
        await billing.require_billable(as_(cora), cora.id, unassigned, field="f")


async def test_require_single_clinician_wants_exactly_one_before_anything_else(world):
    group, _, _, other, _, as_ = world
    for selection in (None, [], [group.ann.id, group.ben.id], [other.ann.id, other.ben.id]):
        with pytest.raises(SingleClinicianRequired):
            await billing.require_single_clinician(as_(group.owner), selection, group.ann_chart)
    clinician, _ = await billing.require_single_clinician(as_(group.owner), [group.ann.id], group.ann_chart)
    assert clinician.id == group.ann.row.id
    with pytest.raises(NotFound):
        await billing.require_single_clinician(as_(group.owner), [other.ann.id], group.ann_chart)
