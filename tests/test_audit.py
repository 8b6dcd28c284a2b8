"""The audit log: what is recorded, who may read it, and the hash chain that shows tampering."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx

from models import AuditEvent, Practice
from models.enums import Permission, Role
from resolvers import audit
from server.app import create_app
from tests.conftest import Api
from tests.factories import add_member
from tests.platform_support import REVOKE_TOKEN, create_token

LOG = """query($f: AuditFilter, $first: Int, $after: String) { practice { auditLog(first: $first, after: $after, filter:
$f) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { id action targetId createdAt actor { id name } apiToken { id name } } } } } }"""
TOKENS = "{ practice { apiTokens { edges { node { id } } } } }"
MEMBER_ID = "{ viewer { id } }"


async def log(api, token: str, **filters) -> list[dict]:
    data = await api.ok(LOG, {"f": filters or None, "first": 100}, token)
    return [e["node"] for e in data["practice"]["auditLog"]["edges"]]


async def actions(api, token: str, **filters) -> list[str]:
    return [e["action"] for e in await log(api, token, **filters)]


# ------------------------------------------------------------------ what is recorded


async def test_log_ins_and_failed_log_ins_are_recorded(api):
    owner = await api.sign_up()
    await api.log_in("calm-minds", "owner@example.com")
    failed = await api.log_in("calm-minds", "owner@example.com", password="wrong password!!")
    assert failed["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    unknown = await api.log_in("calm-minds", "nobody@example.com")
    assert unknown["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    events = await log(api, owner["accessToken"])
    assert [e["action"] for e in events] == [
        "auth.login_failed",
        "auth.login_failed",
        "auth.logged_in",
        "practice.signed_up",
    ]
    unknown_event, failed_event, logged_in, _ = events
    # A failed log-in has no actor; it names the account when there is one.
    assert failed_event["actor"] is None and failed_event["targetId"] == owner["member"]["id"]
    assert unknown_event["actor"] is None and unknown_event["targetId"] is None
    assert logged_in["actor"]["id"] == owner["member"]["id"] and logged_in["targetId"] == owner["member"]["id"]


async def test_denials_are_recorded_even_though_the_request_fails(api):
    owner = (await api.sign_up())["accessToken"]
    clinician = (await add_member(api, "calm-minds", "casey@example.com")).token
    casey = (await api.ok(MEMBER_ID, token=clinician))["viewer"]["id"]

    code, _ = await api.error(TOKENS, token=clinician)
    assert code == "FORBIDDEN"
    code, _ = await api.error(
        "mutation($i: SetMemberPermissionsInput!) { setMemberPermissions(input: $i) { member { id } } }",
        {"i": {"memberId": casey, "permissions": ["VIEW_BILLING"]}},
        clinician,
    )
    assert code == "FORBIDDEN"

    denied = await log(api, owner, action="auth.denied")
    assert len(denied) == 2
    assert {e["actor"]["id"] for e in denied} == {casey}
    rows = await AuditEvent.filter(action="auth.denied").order_by("sequence")
    assert [r.details["path"] for r in rows] == ["practice.apiTokens", "setMemberPermissions"]
    assert "MANAGE_API_TOKENS" in rows[0].details["reason"]


async def test_member_changes_are_recorded_with_actor_and_target(api):
    owner = await api.sign_up()
    session = owner["accessToken"]
    clinician = (await add_member(api, "calm-minds", "casey@example.com")).token
    casey = (await api.ok(MEMBER_ID, token=clinician))["viewer"]["id"]

    await api.ok(
        "mutation($i: UpdateMemberInput!) { updateMember(input: $i) { member { role } } }",
        {"i": {"memberId": casey, "role": "ADMINISTRATOR"}},
        session,
    )
    await api.ok(
        "mutation($i: SetMemberPermissionsInput!) { setMemberPermissions(input: $i) { member { id } } }",
        {"i": {"memberId": casey, "permissions": ["VIEW_BILLING"]}},
        session,
    )
    await api.ok(
        "mutation($i: DeactivateMemberInput!) { deactivateMember(input: $i) { member { status } } }",
        {"i": {"memberId": casey}},
        session,
    )

    events = await log(api, session, targetId=casey)
    assert [e["action"] for e in events] == [
        "member.deactivated",
        "member.permissions_changed",
        "member.role_changed",
        "auth.logged_in",
    ]
    assert all(e["actor"]["id"] == owner["member"]["id"] for e in events[:3])


async def test_token_changes_and_what_tokens_do_are_recorded(api):
    owner = await api.sign_up()
    session = owner["accessToken"]
    created = await create_token(api, session, ["READ_MEMBERS"], name="Sync")
    token_id = created["apiToken"]["id"]
    code, _ = await api.error(TOKENS, token=created["token"])  # denied: recorded with the token
    assert code == "FORBIDDEN"
    await api.ok(REVOKE_TOKEN, {"i": {"apiTokenId": token_id}}, session)

    events = await log(api, session)
    assert [e["action"] for e in events[:3]] == ["api_token.revoked", "auth.denied", "api_token.created"]
    revoked, denied, created_event = events[:3]
    assert revoked["targetId"] == token_id and created_event["targetId"] == token_id
    assert revoked["actor"]["id"] == created_event["actor"]["id"] == owner["member"]["id"]
    assert revoked["apiToken"] is None and created_event["apiToken"] is None
    # The token acted as its creator: the creator is the actor, the token is named.
    assert denied["actor"]["id"] == owner["member"]["id"]
    assert denied["apiToken"] == {"id": token_id, "name": "Sync"}
    assert await actions(api, session, apiTokenId=token_id) == ["auth.denied"]


async def test_events_of_reads_and_denials_are_withheld_with_the_response_if_they_cannot_be_written(api, monkeypatch):
    await api.sign_up()
    clinician = (await add_member(api, "calm-minds", "casey@example.com")).token

    async def broken(*args, **kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(audit, "record_many", broken)
    code, body = await api.error("{ viewer { name } practice { apiTokens { totalCount } } }", token=clinician)
    assert code == "INTERNAL"
    assert body["data"] is None


# ------------------------------------------------------------------ reading the log


async def test_filters_and_keyset_pages(api, clock):
    owner = await api.sign_up()
    owner_id = owner["member"]["id"]
    # Read with a partner token: it stays valid while the clock moves (sessions last 15 minutes).
    session = (await create_token(api, owner["accessToken"], ["READ_AUDIT_LOG"]))["token"]
    start = clock.now()
    for _ in range(3):
        clock.advance(timedelta(minutes=10))
        await api.log_in("calm-minds", "owner@example.com")
    await api.log_in("calm-minds", "owner@example.com", password="not the password")

    assert len(await log(api, session, actorId=owner_id)) == 5  # sign-up, the token, three log-ins
    assert len(await log(api, session, action="auth.logged_in")) == 3
    assert await actions(api, session, action="auth.login_failed") == ["auth.login_failed"]
    window = await log(
        api,
        session,
        **{"from": (start + timedelta(minutes=15)).isoformat(), "to": (start + timedelta(minutes=25)).isoformat()},
    )
    assert [e["action"] for e in window] == ["auth.logged_in"]
    code, body = await api.error(LOG, {"f": {"from": start.isoformat(), "to": start.isoformat()}}, session)
    assert (code, body["errors"][0]["extensions"]["field"]) == ("BAD_USER_INPUT", "filter.to")

    everything = await log(api, session)
    pages, after = [], None
    while True:
        data = (await api.ok(LOG, {"first": 2, "after": after}, session))["practice"]["auditLog"]
        assert data["totalCount"] is None
        pages.append([e["node"]["id"] for e in data["edges"]])
        if not data["pageInfo"]["hasNextPage"]:
            break
        after = data["pageInfo"]["endCursor"]
    assert [i for page in pages for i in page] == [e["id"] for e in everything]
    assert [len(p) for p in pages] == [2, 2, 2]


async def test_the_log_needs_view_audit_log_and_stays_in_its_practice(api):
    owner = (await api.sign_up())["accessToken"]
    clinician = (await add_member(api, "calm-minds", "casey@example.com")).token
    auditor = (
        await add_member(
            api, "calm-minds", "audrey@example.com", role=Role.ADMINISTRATOR, permissions=(Permission.VIEW_AUDIT_LOG,)
        )
    ).token
    other = (await api.sign_up(practice="Other Place", email="boss@example.com"))["accessToken"]
    await create_token(api, owner, ["READ_MEMBERS"])

    code, body = await api.error(LOG, token=clinician)
    assert code == "FORBIDDEN" and body["data"]["practice"]["auditLog"] is None
    events = await log(api, auditor)
    assert events and all(e["apiToken"] is None for e in events)
    assert "api_token.created" in [e["action"] for e in events]
    assert "api_token.created" not in await actions(api, other)

    node = "query($id: ID!) { node(id: $id) { id ... on AuditEvent { action } } }"
    event_id = events[0]["id"]
    assert (await api.ok(node, {"id": event_id}, auditor))["node"] == {"id": event_id, "action": events[0]["action"]}
    assert (await api.ok(node, {"id": event_id}, clinician))["node"] is None
    assert (await api.ok(node, {"id": event_id}, other))["node"] is None


async def test_a_token_reads_the_log_with_read_audit_log_but_not_the_tokens_in_it(api):
    owner = (await api.sign_up())["accessToken"]
    created = await create_token(api, owner, ["READ_AUDIT_LOG"])
    await api.error(TOKENS, token=created["token"])
    events = await log(api, created["token"], action="auth.denied")
    assert len(events) == 1 and events[0]["apiToken"] is None


# ------------------------------------------------------------------ the chain


async def _events(slug: str = "calm-minds") -> list[AuditEvent]:
    practice = await Practice.get(slug=slug)
    return await AuditEvent.filter(practice_id=practice.id).order_by("sequence")


async def _busy_practice(api) -> None:
    await api.sign_up()
    await api.sign_up(practice="Other Place", email="boss@example.com")
    for _ in range(3):
        await api.log_in("calm-minds", "owner@example.com")
    await api.log_in("calm-minds", "owner@example.com", password="not the password")


async def test_an_untouched_chain_verifies(api):
    await _busy_practice(api)
    assert len(await _events()) == 5
    assert await audit.verify_all() == []


async def test_concurrent_appends_keep_one_unbroken_chain(api):
    await api.sign_up()
    clinician = (await add_member(api, "calm-minds", "casey@example.com")).token
    failures = [api.log_in("calm-minds", "owner@example.com", password="not the password") for _ in range(8)]
    denials = [api.post(TOKENS, token=clinician) for _ in range(8)]
    await asyncio.gather(*failures, *denials)
    events = await _events()
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert sum(e.action in ("auth.login_failed", "auth.denied") for e in events) == 16
    assert await audit.verify_all() == []


async def test_the_verifier_names_an_edited_event(api):
    await _busy_practice(api)
    events = await _events()
    await AuditEvent.filter(id=events[2].id).update(action="auth.logged_out")
    problems = await audit.verify_all()
    assert len(problems) == 1
    assert "practice calm-minds" in problems[0] and f"sequence 3 (event {events[2].id}" in problems[0]
    assert "edited" in problems[0]


async def test_the_verifier_names_the_event_after_a_deleted_one(api):
    await _busy_practice(api)
    events = await _events()
    await AuditEvent.filter(id=events[1].id).delete()
    problems = await audit.verify_all()
    assert len(problems) == 1
    assert f"sequence 3 (event {events[2].id}" in problems[0] and "deleted" in problems[0]


async def test_the_verifier_notices_the_newest_events_cut_off_the_end(api):
    await _busy_practice(api)
    events = await _events()
    await AuditEvent.filter(id__in=[events[-1].id, events[-2].id]).delete()
    problems = await audit.verify_all()
    assert len(problems) == 1
    assert f"sequence {len(events) - 2} (event {events[-3].id}" in problems[0]
    assert f"head records {len(events)}" in problems[0] and "missing at the end" in problems[0]


async def test_the_verifier_names_reordered_events(api):
    await _busy_practice(api)
    events = await _events()
    second, third = events[1], events[2]
    await AuditEvent.filter(id=second.id).update(sequence=-1)
    await AuditEvent.filter(id=third.id).update(sequence=2)
    await AuditEvent.filter(id=second.id).update(sequence=3)
    problems = await audit.verify_all()
    assert len(problems) == 1
    assert f"sequence 2 (event {third.id}" in problems[0]


async def test_the_verifier_catches_an_edit_that_keeps_the_hashes(api):
    await _busy_practice(api)
    events = await _events()
    await AuditEvent.filter(id=events[0].id).update(details={"forged": True})
    problems = await audit.verify_all()
    assert f"sequence 1 (event {events[0].id}" in problems[0]


async def test_audit_verify_command_exits_1_and_names_the_broken_link(settings, clock, tmp_path: Path):
    database_url = f"sqlite://{tmp_path / 'audit.sqlite3'}"
    application = create_app(settings.with_(database_url=database_url), clock=clock, generate_schemas=True)
    transport = httpx.ASGITransport(app=application)
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(transport=transport, base_url="http://test") as http,
    ):
        api = Api(http)
        await api.sign_up()
        await api.log_in("calm-minds", "owner@example.com")

    def verify() -> subprocess.CompletedProcess:
        env = {**os.environ, "GROUPS_API_JWT_SECRET": "x" * 40, "GROUPS_API_ENV": "development"}
        return subprocess.run(
            [sys.executable, "-m", "server.cli", "audit", "verify", "--database-url", database_url],
            check=False,
            capture_output=True,
            text=True,
            env=env,
            cwd=Path(__file__).resolve().parent.parent,
            timeout=120,
        )

    clean = verify()
    assert clean.returncode == 0, clean.stderr
    assert "audit chain: ok" in clean.stdout

    async with application.router.lifespan_context(application):
        event = await AuditEvent.filter(sequence=1).first()
        await AuditEvent.filter(id=event.id).update(target_id="forged")
    broken = verify()
    assert broken.returncode == 1
    assert f"chain broken at sequence 1 (event {event.id}" in broken.stdout
