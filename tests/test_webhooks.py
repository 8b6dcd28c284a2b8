"""Webhooks: endpoints for a partner token, deliveries signed as Standard Webhooks say (verified here by a real
receiver on 127.0.0.1 with the ``standardwebhooks`` package), retried with back-off, filtered by what the token may
read at delivery time, stopped with the token, and refused private addresses in production."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from auth.tokens import hash_secret
from models import ApiToken, AuditEvent, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from models.enums import Permission, Role, TokenScope
from models.webhooks import WebhookDeliveryStatus
from resolvers import ids, webhooks
from tests import factories
from tests.factories_billing import CREATE_INVOICE, Group, charge, make_group, pay

CREATE_TOKEN = """mutation($i: CreateApiTokenInput!) { createApiToken(input: $i) { token apiToken { id } } }"""
REVOKE_TOKEN = "mutation($i: ApiTokenInput!) { revokeApiToken(input: $i) { apiToken { id } } }"
CREATE = """mutation($i: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $i) { secret
  webhookEndpoint { id url description eventTypes createdAt apiToken { id } } } }"""
DELETE = "mutation($i: WebhookEndpointInput!) { deleteWebhookEndpoint(input: $i) { webhookEndpoint { id } } }"
ENDPOINTS = """{ practice { webhookEndpoints { totalCount edges { node { id url eventTypes
  deliveries(first: 10) { edges { node { id status attempts lastResponseStatus lastAttemptAt nextAttemptAt event { id
  type subjectId } } } } } } } } }"""
FEED = "{ practice { events(first: 100) { edges { node { id type subjectId } } } } }"
CREATE_CHART = "mutation($i: CreateChartInput!) { createChart(input: $i) { chart { id } } }"
DEACTIVATE = "mutation($i: DeactivateMemberInput!) { deactivateMember(input: $i) { member { id } } }"
NODE = "query($id: ID!) { node(id: $id) { id ... on WebhookEndpoint { url } ... on WebhookDelivery { status } } }"


class Receiver:
    """A partner's HTTP endpoint on 127.0.0.1: verifies each request with standardwebhooks, answers as told."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.answers: list[int] = []
        self.default = 200
        self.secret: str | None = None
        self.delay = 0.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                content = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified = None
                if receiver.secret:
                    try:
                        verified = Webhook(receiver.secret).verify(content, headers)
                    except WebhookVerificationError as exc:  # recorded, and the answer is 401 below
                        verified = exc
                receiver.requests.append({"path": self.path, "headers": headers, "body": content, "verified": verified})
                if receiver.delay:
                    time.sleep(receiver.delay)
                status = receiver.answers.pop(0) if receiver.answers else receiver.default
                if isinstance(verified, Exception) and status < 300:
                    status = 401
                self.send_response(status)
                if status in (301, 302, 307, 308):
                    self.send_header("location", "/elsewhere")
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def bodies(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.requests]


@pytest.fixture
def receiver():
    r = Receiver()
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


@pytest.fixture
def settings(settings, request):
    """``@pytest.mark.parametrize("settings", ["production"], indirect=True)`` runs a test in production mode."""
    return settings.with_(env="production") if getattr(request, "param", None) == "production" else settings


@pytest.fixture
async def group(api) -> Group:
    return await make_group(api)


async def token_for(api, account, scopes: list[str]) -> tuple[str, str]:
    """(API token id, secret) created by ``account`` through createApiToken."""
    data = (await api.ok(CREATE_TOKEN, {"i": {"name": "partner", "scopes": scopes}}, account.token))["createApiToken"]
    return data["apiToken"]["id"], data["token"]


async def endpoint(api, account, token_id: str, url: str, types: list[str], receiver: Receiver | None = None) -> dict:
    data = (await api.ok(CREATE, {"i": {"apiTokenId": token_id, "url": url, "eventTypes": types}}, account.token))[
        "createWebhookEndpoint"
    ]
    if receiver is not None:
        receiver.secret = data["secret"]
    return data


async def deliveries(api, account) -> list[dict]:
    endpoints = (await api.ok(ENDPOINTS, token=account.token))["practice"]["webhookEndpoints"]["edges"]
    return [d["node"] for e in endpoints for d in e["node"]["deliveries"]["edges"]]


async def create_chart(api, token: str, name: str, clinicians: list[str] | None = None) -> str:
    return (await api.ok(CREATE_CHART, {"i": {"patientName": name, "clinicianIds": clinicians}}, token))["createChart"][
        "chart"
    ]["id"]


async def test_an_event_is_delivered_signed_right_after_the_response(api, group: Group, receiver: Receiver):
    owner = group.owner
    token_id, _ = await token_for(api, owner, ["READ_BILLING"])
    created = await endpoint(
        api, owner, token_id, receiver.url, ["BILLING_ENTRY_RECORDED", "INVOICE_CREATED"], receiver
    )
    assert created["secret"].startswith("whsec_")
    assert created["webhookEndpoint"]["apiToken"]["id"] == token_id
    assert created["webhookEndpoint"]["eventTypes"] == ["BILLING_ENTRY_RECORDED", "INVOICE_CREATED"]
    entry = (await charge(api, owner, group.ann_chart, group.ann, "120.00"))["entry"]["id"]
    (request,) = receiver.requests  # sent before the client got its answer (after the commit)
    (event,) = (await api.ok(FEED, token=owner.token))["practice"]["events"]["edges"]
    assert request["verified"] == {
        "type": "BILLING_ENTRY_RECORDED",
        "timestamp": request["verified"]["timestamp"],
        "data": {
            "id": event["node"]["id"],
            "subjectId": entry,
            "practiceId": ids.encode("Practice", group.practice.id),
        },
    }
    headers = request["headers"]
    assert headers["webhook-id"] == event["node"]["id"]
    assert headers["content-type"] == "application/json"
    # The signature by hand: v1, base64 HMAC-SHA256 of id.timestamp.body under the base64 key after whsec_.
    key = base64.b64decode(created["secret"].removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + request["body"]
    assert (
        headers["webhook-signature"]
        == "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    )
    (delivery,) = await deliveries(api, owner)
    assert (delivery["status"], delivery["attempts"], delivery["lastResponseStatus"], delivery["nextAttemptAt"]) == (
        "SUCCEEDED",
        1,
        200,
        None,
    )
    assert delivery["event"]["subjectId"] == entry
    # The secret rests encrypted.
    row = await WebhookEndpoint.get(id=ids.parse(created["webhookEndpoint"]["id"])[1])
    assert created["secret"] not in row.secret_encrypted


async def test_a_failed_delivery_is_retried_with_backoff_under_the_same_id(
    api, group: Group, receiver: Receiver, settings, clock
):
    owner = group.owner
    token_id, _ = await token_for(api, owner, ["READ_CHARTS"])
    await endpoint(api, owner, token_id, receiver.url, ["CHART_CREATED"], receiver)
    receiver.answers = [500]
    await create_chart(api, owner.token, "Pat Retry")
    (delivery,) = await deliveries(api, owner)
    assert (delivery["status"], delivery["attempts"], delivery["lastResponseStatus"]) == ("PENDING", 1, 500)
    assert await webhooks.deliver_due(settings, clock.now) == 0  # backing off
    clock.advance(timedelta(seconds=10))  # the first retry comes within 30 s
    assert await webhooks.deliver_due(settings, clock.now) == 1
    assert [r["headers"]["webhook-id"] for r in receiver.requests] == [
        receiver.requests[0]["headers"]["webhook-id"]
    ] * 2
    assert all(isinstance(r["verified"], dict) for r in receiver.requests)
    (delivery,) = await deliveries(api, owner)
    assert (delivery["status"], delivery["attempts"], delivery["lastResponseStatus"]) == ("SUCCEEDED", 2, 200)
    assert [a.response_status for a in await WebhookAttempt.all().order_by("attempted_at")] == [500, 200]


async def test_retries_go_on_for_24_hours_then_fail(api, group: Group, receiver: Receiver, settings, clock):
    owner = group.owner
    token_id, _ = await token_for(api, owner, ["READ_CHARTS"])
    await endpoint(api, owner, token_id, receiver.url, ["CHART_CREATED"])
    receiver.default = 503
    await create_chart(api, owner.token, "Pat Down")
    row = await WebhookDelivery.get()
    delays = []
    while row.status == WebhookDeliveryStatus.PENDING:
        delays.append(row.next_attempt_at - clock.now())
        clock.advance(row.next_attempt_at - clock.now())
        assert await webhooks.deliver_due(settings, clock.now) == 1
        row = await WebhookDelivery.get()
    assert delays[0] <= timedelta(seconds=30)
    seconds = [round(d.total_seconds()) for d in delays]  # the test clock runs on real time between the reads
    assert seconds == sorted(seconds) and seconds[-1] == webhooks.MAX_RETRY_DELAY.total_seconds(), seconds
    assert row.status == WebhookDeliveryStatus.FAILED and row.next_attempt_at is None
    assert row.last_attempt_at - row.created_at >= timedelta(hours=24)
    assert row.attempts == len(receiver.requests) == len(delays) + 1


async def test_nothing_is_delivered_once_the_token_is_revoked_expired_or_its_creator_gone(
    api, group: Group, receiver: Receiver, settings, clock
):
    owner = group.owner
    admin = await group.member(
        "Ada Admin", Role.ADMINISTRATOR, [Permission.MANAGE_API_TOKENS, Permission.VIEW_ALL_CHARTS]
    )
    revoked_id, _ = await token_for(api, owner, ["READ_CHARTS"])
    admins_id, _ = await token_for(api, admin, ["READ_CHARTS"])
    await endpoint(api, owner, revoked_id, receiver.url + "/revoked", ["CHART_CREATED"])
    await endpoint(api, owner, admins_id, receiver.url + "/admins", ["CHART_CREATED"])
    receiver.default = 500
    await create_chart(api, owner.token, "Pat One")
    assert len(receiver.requests) == 2
    await api.ok(REVOKE_TOKEN, {"i": {"apiTokenId": revoked_id}}, owner.token)
    await api.ok(DEACTIVATE, {"i": {"memberId": admin.id}}, owner.token)
    receiver.default = 200
    clock.advance(timedelta(minutes=1))
    assert await webhooks.deliver_due(settings, clock.now) == 0
    assert len(receiver.requests) == 2  # the queued retries stopped unsent
    rows = await WebhookDelivery.all()
    assert {r.status for r in rows} == {WebhookDeliveryStatus.FAILED}
    assert {r.last_error for r in rows} == {
        "the endpoint's API token is revoked"
    }  # deactivation revoked the admin's token too
    await create_chart(api, owner.token, "Pat Two")
    assert len(receiver.requests) == 2 and await WebhookDelivery.all().count() == 2  # nothing queued for dead tokens
    # Expiry: a token that expires while its delivery waits.
    expiring_id, _ = await token_for(api, owner, ["READ_CHARTS"])
    await endpoint(api, owner, expiring_id, receiver.url + "/expiring", ["CHART_CREATED"])
    receiver.default = 500
    await create_chart(api, owner.token, "Pat Three")
    clock.advance(timedelta(days=366))
    receiver.default = 200
    assert await webhooks.deliver_due(settings, clock.now) == 0
    assert len(receiver.requests) == 3


async def test_an_endpoint_receives_only_what_its_token_may_read_and_no_patient_name(
    api, group: Group, receiver: Receiver
):
    owner, ann = group.owner, group.ann
    # Ann holds no MANAGE_API_TOKENS: her token is inserted; the owner creates the endpoint for it.
    secret = await factories.insert_api_token(ann.row, (TokenScope.READ_CHARTS, TokenScope.READ_BILLING))
    token_id = ids.encode("ApiToken", (await ApiToken.get(token_hash=hash_secret(secret))).id)
    every = ["CHART_CREATED", "CHART_ASSIGNMENT_CHANGED", "BILLING_ENTRY_RECORDED", "INVOICE_CREATED", "INVOICE_PAID"]
    await endpoint(api, owner, token_id, receiver.url, every, receiver)
    anns = await create_chart(api, owner.token, "Annabel Secretname", [ann.id])
    bens = await create_chart(api, owner.token, "Benedict Hiddenname", [group.ben.id])
    await charge(api, owner, anns, ann, "80.00")
    await charge(api, owner, bens, group.ben, "90.00")
    invoice = (await api.ok(CREATE_INVOICE, {"i": {"chartId": anns, "clinicianIds": [ann.id]}}, owner.token))[
        "createInvoice"
    ]["invoice"]["id"]
    await pay(api, owner, anns, ann, "80.00", invoice=invoice)
    received = [(b["type"], b["data"]["subjectId"]) for b in receiver.bodies()]
    # (The events of one write are sent at once, in no promised order: the feed holds the order.)
    assert sorted(kind for kind, _ in received) == sorted(
        [
            "CHART_CREATED",
            "BILLING_ENTRY_RECORDED",
            "INVOICE_CREATED",
            "BILLING_ENTRY_RECORDED",
            "INVOICE_PAID",
        ]
    )
    assert received[0] == ("CHART_CREATED", anns)
    assert all(isinstance(r["verified"], dict) for r in receiver.requests)
    for request in receiver.requests:
        assert b"Secretname" not in request["body"] and b"Hiddenname" not in request["body"]
        assert set(json.loads(request["body"])) == {"type", "timestamp", "data"}
        assert set(json.loads(request["body"])["data"]) == {"id", "subjectId", "practiceId"}
    # The deliveries the token may not read were dropped unsent, not listed.
    assert len(await deliveries(api, owner)) == 5 == await WebhookDelivery.all().count()


async def test_creating_an_endpoint_is_refused_without_changing_anything(api, group: Group, receiver: Receiver):
    owner = group.owner
    token_id, partner = await token_for(api, owner, ["READ_CHARTS"])
    revoked_id, _ = await token_for(api, owner, ["READ_CHARTS"])
    await api.ok(REVOKE_TOKEN, {"i": {"apiTokenId": revoked_id}}, owner.token)
    other = await make_group(api, practice="Elsewhere", email="else@example.com")
    others_id, _ = await token_for(api, other.owner, ["READ_CHARTS"])
    audit_before = await AuditEvent.exclude(action="auth.denied").count()  # denials are on record; nothing else
    cases = [
        (
            owner.token,
            {"apiTokenId": token_id, "url": receiver.url, "eventTypes": ["BILLING_ENTRY_RECORDED"]},
            "BAD_USER_INPUT",
            "input.eventTypes",
        ),
        (
            owner.token,
            {"apiTokenId": token_id, "url": receiver.url, "eventTypes": []},
            "BAD_USER_INPUT",
            "input.eventTypes",
        ),
        (
            owner.token,
            {"apiTokenId": revoked_id, "url": receiver.url, "eventTypes": ["CHART_CREATED"]},
            "BAD_USER_INPUT",
            "input.apiTokenId",
        ),
        (
            owner.token,
            {"apiTokenId": others_id, "url": receiver.url, "eventTypes": ["CHART_CREATED"]},
            "NOT_FOUND",
            None,
        ),
        (
            owner.token,
            {"apiTokenId": "nope", "url": receiver.url, "eventTypes": ["CHART_CREATED"]},
            "BAD_USER_INPUT",
            "input.apiTokenId",
        ),
        (
            owner.token,
            {"apiTokenId": token_id, "url": "ftp://127.0.0.1/x", "eventTypes": ["CHART_CREATED"]},
            "BAD_USER_INPUT",
            "input.url",
        ),
        (
            owner.token,
            {"apiTokenId": token_id, "url": "http://user:pw@127.0.0.1/x", "eventTypes": ["CHART_CREATED"]},
            "BAD_USER_INPUT",
            "input.url",
        ),
        (
            owner.token,
            {"apiTokenId": token_id, "url": "x" * 2001, "eventTypes": ["CHART_CREATED"]},
            "BAD_USER_INPUT",
            "input.url",
        ),
        (
            group.ann.token,
            {"apiTokenId": token_id, "url": receiver.url, "eventTypes": ["CHART_CREATED"]},
            "FORBIDDEN",
            None,
        ),
        (partner, {"apiTokenId": token_id, "url": receiver.url, "eventTypes": ["CHART_CREATED"]}, "FORBIDDEN", None),
    ]
    for token, values, expected, field in cases:
        code, body = await api.error(CREATE, {"i": values}, token)
        assert (code, body["errors"][0]["extensions"].get("field")) == (expected, field), values
    assert await WebhookEndpoint.all().count() == 0
    assert await AuditEvent.exclude(action="auth.denied").count() == audit_before
    assert (await api.error(ENDPOINTS, token=partner))[0] == "FORBIDDEN"  # sessions only
    assert (await api.error(ENDPOINTS, token=group.ann.token))[0] == "FORBIDDEN"


async def test_a_deleted_endpoint_gets_nothing_more(api, group: Group, receiver: Receiver, settings, clock):
    owner = group.owner
    token_id, _ = await token_for(api, owner, ["READ_CHARTS"])
    created = await endpoint(api, owner, token_id, receiver.url, ["CHART_CREATED"], receiver)
    endpoint_id = created["webhookEndpoint"]["id"]
    receiver.answers = [500]
    await create_chart(api, owner.token, "Pat Before")
    delivery_id = (await deliveries(api, owner))[0]["id"]
    assert (await api.ok(NODE, {"id": endpoint_id}, owner.token))["node"]["url"] == receiver.url
    assert (await api.ok(NODE, {"id": delivery_id}, owner.token))["node"]["status"] == "PENDING"
    assert (await api.ok(NODE, {"id": endpoint_id}, group.ann.token))["node"] is None
    await api.ok(DELETE, {"i": {"webhookEndpointId": endpoint_id}}, owner.token)
    assert (await api.error(DELETE, {"i": {"webhookEndpointId": endpoint_id}}, owner.token))[0] == "NOT_FOUND"
    await create_chart(api, owner.token, "Pat After")
    clock.advance(timedelta(minutes=5))
    assert await webhooks.deliver_due(settings, clock.now) == 0
    assert len(receiver.requests) == 1
    data = (await api.ok(ENDPOINTS, token=owner.token))["practice"]["webhookEndpoints"]
    assert (data["totalCount"], data["edges"]) == (0, [])
    assert (await api.ok(NODE, {"id": endpoint_id}, owner.token))["node"] is None


async def test_redirects_are_not_followed_and_slow_answers_time_out(
    api, group: Group, receiver: Receiver, settings, clock, monkeypatch
):
    owner = group.owner
    token_id, _ = await token_for(api, owner, ["READ_CHARTS"])
    await endpoint(api, owner, token_id, receiver.url, ["CHART_CREATED"], receiver)
    receiver.answers = [302]
    await create_chart(api, owner.token, "Pat Redirect")
    assert [r["path"] for r in receiver.requests] == ["/hook"]
    row = await WebhookDelivery.get()
    assert (row.status, row.last_response_status) == (WebhookDeliveryStatus.PENDING, 302)
    monkeypatch.setattr(webhooks, "TIMEOUT_SECONDS", 0.3)
    receiver.delay = 1.0
    clock.advance(timedelta(minutes=1))
    assert await webhooks.deliver_due(settings, clock.now) == 1
    row = await WebhookDelivery.get()
    assert (row.status, row.last_response_status, row.attempts) == (WebhookDeliveryStatus.PENDING, None, 2)
    assert "no answer within" in row.last_error


async def test_concurrent_delivery_passes_send_a_delivery_once(api, group: Group, receiver: Receiver, settings, clock):
    owner = group.owner
    token_id, _ = await token_for(api, owner, ["READ_CHARTS"])
    await endpoint(api, owner, token_id, receiver.url, ["CHART_CREATED"], receiver)
    receiver.answers = [500, 500, 500]
    for i in range(3):
        await create_chart(api, owner.token, f"Pat {i}")
    assert len(receiver.requests) == 3
    clock.advance(timedelta(minutes=1))
    attempted = await asyncio.gather(*(webhooks.deliver_due(settings, clock.now) for _ in range(4)))
    assert sum(attempted) == 3
    assert len(receiver.requests) == 6
    assert {r.status for r in await WebhookDelivery.all()} == {WebhookDeliveryStatus.SUCCEEDED}


# ------------------------------------------------------------------ production: SSRF


def resolving(table: dict[str, list[str]]):
    async def resolve(host: str, port: int) -> list[str]:
        if host in table:
            return table[host]
        raise OSError(f"unknown host {host}")

    return resolve


@pytest.mark.parametrize("settings", ["production"], indirect=True)
async def test_production_refuses_plain_http_and_private_addresses(api, group: Group, monkeypatch):
    owner = group.owner
    monkeypatch.setattr(
        webhooks,
        "resolve",
        resolving(
            {
                "partner.example": ["93.184.216.34"],
                "inside.example": ["10.0.0.7"],
                "mixed.example": ["93.184.216.34", "192.168.1.1"],
                "localhost": ["127.0.0.1", "::1"],
                "mapped.example": ["::ffff:127.0.0.1"],
                "cgnat.example": ["100.64.0.1"],
            }
        ),
    )
    token_id, _ = await token_for(api, owner, ["READ_CHARTS"])
    refused = [
        "http://partner.example/hook",
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[fe80::1]/hook",
        "https://224.0.0.1/hook",
        "https://inside.example/hook",
        "https://mixed.example/hook",
        "https://mapped.example/hook",
        "https://cgnat.example/hook",
        "https://0.0.0.0/hook",
        "https://nowhere.example/hook",
    ]
    for url in refused:
        code, body = await api.error(
            CREATE, {"i": {"apiTokenId": token_id, "url": url, "eventTypes": ["CHART_CREATED"]}}, owner.token
        )
        assert (code, body["errors"][0]["extensions"]["field"]) == ("BAD_USER_INPUT", "input.url"), url
    assert await WebhookEndpoint.all().count() == 0
    await endpoint(api, owner, token_id, "https://partner.example/hook", ["CHART_CREATED"])
    assert await WebhookEndpoint.all().count() == 1


@pytest.mark.parametrize("settings", ["production"], indirect=True)
async def test_production_checks_the_address_again_at_each_delivery(api, group: Group, receiver: Receiver, monkeypatch):
    owner = group.owner
    table = {"partner.example": ["93.184.216.34"]}
    monkeypatch.setattr(webhooks, "resolve", resolving(table))
    token_id, _ = await token_for(api, owner, ["READ_CHARTS"])
    await endpoint(api, owner, token_id, "https://partner.example/hook", ["CHART_CREATED"])
    table["partner.example"] = ["127.0.0.1"]  # the DNS answer changed after the check at creation
    await create_chart(api, owner.token, "Pat Rebind")
    row = await WebhookDelivery.get()
    assert (row.status, row.attempts, row.last_response_status) == (WebhookDeliveryStatus.PENDING, 1, None)
    assert row.last_error.startswith("refused: the host resolves to a loopback")
    assert receiver.requests == []


def test_forbidden_addresses():
    for address in (
        "127.0.0.1",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.0.1",
        "169.254.1.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "224.0.0.1",
        "ff02::1",
        "0.0.0.0",
        "100.64.0.1",
        "::ffff:10.0.0.1",
    ):
        assert webhooks.forbidden_address(address), address
    for address in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "8.8.8.8"):
        assert not webhooks.forbidden_address(address), address


async def test_a_host_name_is_resolved_once_and_kept_in_the_host_header(
    api, group: Group, receiver: Receiver, monkeypatch
):
    owner = group.owner
    monkeypatch.setattr(webhooks, "resolve", resolving({"partner.test": ["127.0.0.1"]}))
    token_id, _ = await token_for(api, owner, ["READ_CHARTS"])
    port = receiver.url.split(":")[2].split("/")[0]
    await endpoint(api, owner, token_id, f"http://partner.test:{port}/hook", ["CHART_CREATED"], receiver)
    await create_chart(api, owner.token, "Pat Host")
    (request,) = receiver.requests  # sent to the address checked, under the endpoint's own host name
    assert request["headers"]["host"] == f"partner.test:{port}"
    assert isinstance(request["verified"], dict)


def test_the_delivery_and_purge_commands_run(tmp_path, monkeypatch, capsys):
    from server.cli import main

    url = f"sqlite://{tmp_path}/cli.sqlite3"
    monkeypatch.setenv("GROUPS_API_JWT_SECRET", "z" * 40)
    assert main(["migrate", "--database-url", url]) == 0
    assert main(["webhooks", "deliver", "--database-url", url]) == 0
    assert main(["maintenance", "purge", "--database-url", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "webhooks: 0 delivery attempt(s)" in lines
    assert "maintenance purge: 0 event(s) older than 30 days deleted" in lines
