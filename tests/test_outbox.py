"""The outbox: invitation mail is written with the invitation, encrypted at rest, and delivered after the response
by SMTP (here to a real local aiosmtpd server) or, without SMTP, to the log (outside production only)."""

from __future__ import annotations

import asyncio
import email
import logging
import socket
from email import policy

import pytest
from aiosmtpd.controller import Controller

from models import OutboxMessage
from models.outbox import OutboxStatus
from resolvers import outbox
from server.settings import Settings
from tests.factories_subscriptions import frozen_clock, group_practice, invite


class Inbox:
    """An aiosmtpd handler that keeps what it receives, or refuses it while ``refusing`` is set."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refusing = False

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.refusing:
            return "451 try again later"
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def inbox():
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    handler.port = controller.port
    try:
        yield handler
    finally:
        controller.stop()


@pytest.fixture
def settings(database_url: str, inbox: Inbox) -> Settings:
    return Settings(
        env="test",
        database_url=database_url,
        jwt_secret="test-secret-" + "x" * 40,
        public_url="http://test",
        app_url="http://app.test",
        smtp_url=f"smtp://127.0.0.1:{inbox.port}",
        mail_from="invites@groups-api.test",
    )


@pytest.fixture
def clock():
    return frozen_clock()


async def test_an_invitation_is_mailed_by_smtp_after_the_response(api, inbox):
    owner = await group_practice(api)
    token = (await invite(api, owner, "clin@example.com"))["token"]
    assert inbox.envelopes == [("invites@groups-api.test", ["clin@example.com"])]
    (message,) = inbox.messages
    assert message["Subject"] == "You are invited to join Calm Minds"
    assert f"http://app.test/accept-invitation#token={token}" in message.get_content()  # GROUPS_API_APP_URL
    row = await OutboxMessage.get(recipient="clin@example.com")
    assert (row.status, row.attempts, row.body_encrypted) == (OutboxStatus.SENT, 1, "")  # emptied once sent
    assert row.sent_at is not None


async def test_mail_is_encrypted_at_rest_and_retried_after_a_failure(api, inbox, settings, clock):
    inbox.refusing = True
    owner = await group_practice(api)
    token = (await invite(api, owner, "clin@example.com"))["token"]
    row = await OutboxMessage.get(recipient="clin@example.com")
    assert (row.status, row.attempts) == (OutboxStatus.PENDING, 1)
    assert "451" in row.last_error
    assert token not in row.body_encrypted
    assert token in outbox.cipher(settings).decrypt(row.body_encrypted.encode()).decode()
    inbox.refusing = False
    assert await outbox.deliver_pending(settings, clock.now) == 0  # backing off
    clock.advance(outbox.RETRY_AFTER)
    assert await outbox.deliver_pending(settings, clock.now) == 1
    assert token in inbox.messages[0].get_content()
    assert await outbox.deliver_pending(settings, clock.now) == 0


async def test_concurrent_delivery_passes_send_a_message_once(api, inbox, settings, clock):
    inbox.refusing = True
    owner = await group_practice(api)
    await invite(api, owner, "clin@example.com")
    inbox.refusing = False
    clock.advance(outbox.RETRY_AFTER)
    sent = await asyncio.gather(*(outbox.deliver_pending(settings, clock.now) for _ in range(3)))
    assert sum(sent) == 1
    assert len(inbox.messages) == 1


async def test_without_smtp_mail_is_logged_in_development(api, inbox, settings, clock, caplog):
    inbox.refusing = True
    owner = await group_practice(api)
    token = (await invite(api, owner, "clin@example.com"))["token"]
    clock.advance(outbox.RETRY_AFTER)
    with caplog.at_level(logging.INFO, logger="groups_api.outbox"):
        assert await outbox.deliver_pending(settings.with_(smtp_url=None, env="development"), clock.now) == 1
    assert "To: clin@example.com" in caplog.text and token in caplog.text
    assert inbox.messages == []
    assert (await OutboxMessage.get(recipient="clin@example.com")).status == OutboxStatus.SENT


async def test_production_without_smtp_keeps_mail_pending_and_out_of_the_log(api, inbox, settings, clock, caplog):
    inbox.refusing = True
    owner = await group_practice(api)
    token = (await invite(api, owner, "clin@example.com"))["token"]
    clock.advance(outbox.RETRY_AFTER)
    with caplog.at_level(logging.DEBUG, logger="groups_api.outbox"):
        assert await outbox.deliver_pending(settings.with_(smtp_url=None, env="production"), clock.now) == 0
    assert token not in caplog.text
    row = await OutboxMessage.get(recipient="clin@example.com")
    assert (row.status, row.attempts) == (OutboxStatus.PENDING, 2)


def test_smtp_urls():
    assert outbox._smtp_options("smtps://user%40x:p%3Ass@mail.example.com") | {"timeout": None} == {
        "hostname": "mail.example.com",
        "port": 465,
        "username": "user@x",
        "password": "p:ss",
        "use_tls": True,
        "start_tls": False,
        "timeout": None,
    }
    options = outbox._smtp_options("smtp://relay:2525")
    assert (options["port"], options["use_tls"], options["start_tls"], options["username"]) == (2525, False, None, None)
    with pytest.raises(ValueError):
        outbox._smtp_options("http://relay")
