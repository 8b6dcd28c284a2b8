"""The ``groups-api`` command line: serve, migrate, billing run, outbox send, webhooks deliver, maintenance purge, audit
verify."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from server.observability import configure_logging
from server.settings import ConfigurationError, Settings

log = logging.getLogger("groups_api.cli")


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {"database_url": getattr(args, "database_url", None), "env": getattr(args, "env", None)}
    return Settings.from_env(**overrides).checked()


def _export(settings: Settings) -> None:
    """Hand the resolved settings to worker processes (they rebuild them from the environment)."""
    os.environ["GROUPS_API_ENV"] = settings.env
    os.environ["GROUPS_API_DATABASE_URL"] = settings.database_url
    os.environ["GROUPS_API_JWT_SECRET"] = settings.jwt_secret or ""
    # Outside production the link bases follow the serving address (``serve --port 9000`` gives working links).
    if settings.public_url:
        os.environ["GROUPS_API_PUBLIC_URL"] = settings.public_url
    if settings.app_url:
        os.environ["GROUPS_API_APP_URL"] = settings.app_url


async def _migrate(settings: Settings) -> None:
    from server.db import migrate_database

    await migrate_database(settings.database_url)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _settings(args).with_serving_address(args.host, args.port)
    if settings.trusted_documents:
        from server.trusted_documents import load_for

        load_for(settings)  # a manifest that does not fit refuses here, before any worker starts
    # Migrations run once here, never per worker.
    asyncio.run(_migrate(settings))
    _export(settings)
    uvicorn.run(
        "server.asgi:app_from_environment",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=os.environ.get("GROUPS_API_LOG_LEVEL", "info").lower(),
        proxy_headers=False,
        log_config=None,  # keep the structured (JSON) logging configured in main()
    )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    asyncio.run(_migrate(_settings(args)))
    print("migrations applied")
    return 0


def cmd_billing_run(args: argparse.Namespace) -> int:
    from server.jobs import run_billing

    settings = _settings(args)
    created = asyncio.run(run_billing(settings))
    print(f"billing run: {created} renewal charge(s) created")
    return 0


def cmd_outbox_send(args: argparse.Namespace) -> int:
    from server.jobs import send_mail

    sent = asyncio.run(send_mail(_settings(args)))
    print(f"outbox: {sent} message(s) sent")
    return 0


def cmd_webhooks_deliver(args: argparse.Namespace) -> int:
    from server.jobs import deliver_webhooks

    rekeyed, attempted = asyncio.run(deliver_webhooks(_settings(args)))
    if rekeyed:
        print(f"webhooks: {rekeyed} endpoint secret(s) re-encrypted under the current key")
    print(f"webhooks: {attempted} delivery attempt(s)")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from server.jobs import verify_audit

    problems = asyncio.run(verify_audit(_settings(args)))
    for line in problems:
        print(line)
    if problems:
        return 1
    print("audit chain: ok")
    return 0


def cmd_maintenance_purge(args: argparse.Namespace) -> int:
    from server.jobs import purge_events, purge_expired

    settings = _settings(args)
    purged = asyncio.run(purge_expired(settings))
    print(f"maintenance purge: {purged} idempotency key(s) older than 24 hours deleted")
    events = asyncio.run(purge_events(settings))
    print(f"maintenance purge: {events} event(s) older than 30 days deleted")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="groups-api", description="GraphQL API for group mental-health practices.")
    commands = top.add_subparsers(dest="command", required=True)

    def with_database(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--database-url", help="database URL (env GROUPS_API_DATABASE_URL; default: SQLite file here)")
        return p

    serve = with_database(commands.add_parser("serve", help="serve GraphQL at /graphql"))
    serve.add_argument("--host", default=os.environ.get("GROUPS_API_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("GROUPS_API_PORT", "8000")))
    serve.add_argument("--workers", type=int, default=int(os.environ.get("GROUPS_API_WORKERS", "1")))
    serve.set_defaults(run=cmd_serve)

    with_database(commands.add_parser("migrate", help="apply database migrations")).set_defaults(run=cmd_migrate)

    billing = commands.add_parser("billing", help="subscription billing jobs").add_subparsers(dest="job", required=True)
    with_database(
        billing.add_parser("run", help="close ended periods and create their renewal charges (idempotent)")
    ).set_defaults(run=cmd_billing_run)

    outbox = commands.add_parser("outbox", help="outgoing mail").add_subparsers(dest="job", required=True)
    with_database(outbox.add_parser("send", help="send the mail that is due (retries failed deliveries)")).set_defaults(
        run=cmd_outbox_send
    )

    webhooks = commands.add_parser("webhooks", help="webhook delivery").add_subparsers(dest="job", required=True)
    with_database(
        webhooks.add_parser("deliver", help="deliver the webhooks that are due (retries failed deliveries)")
    ).set_defaults(run=cmd_webhooks_deliver)

    audit = commands.add_parser("audit", help="audit log tools").add_subparsers(dest="job", required=True)
    with_database(
        audit.add_parser("verify", help="check every practice's hash chain; name the first broken link")
    ).set_defaults(run=cmd_audit_verify)

    maintenance = commands.add_parser("maintenance", help="housekeeping jobs").add_subparsers(dest="job", required=True)
    with_database(
        maintenance.add_parser("purge", help="delete idempotency keys older than 24 hours, events older than 30 days")
    ).set_defaults(run=cmd_maintenance_purge)
    return top


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except ConfigurationError as exc:
        print(f"groups-api: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
