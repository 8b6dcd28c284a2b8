"""Tortoise models: data and indexes only, no rules. One module per area.

Tortoise discovers the models of the app from this package (``modules={"models": ["models"]}``).
"""

from models.accounts import PasswordReset
from models.api_tokens import ApiToken
from models.audit import AuditEvent, AuditHead
from models.billing import (
    BillingBalance,
    BillingCounter,
    BillingEntry,
    Invoice,
    InvoiceLine,
    Statement,
    StatementLine,
    VoidedInvoiceLine,
)
from models.charts import Chart, ChartAssignment, ChartNote
from models.events import Event
from models.idempotency import IdempotencyKey
from models.invitations import Invitation
from models.members import Member, RotatedRefreshToken, Session
from models.outbox import OutboxMessage
from models.practices import Practice
from models.subscriptions import PeriodSeat, Subscription, SubscriptionCharge, SubscriptionPeriod
from models.webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint

__all__ = [
    "ApiToken",
    "AuditEvent",
    "AuditHead",
    "BillingBalance",
    "BillingCounter",
    "BillingEntry",
    "Chart",
    "ChartAssignment",
    "ChartNote",
    "Event",
    "IdempotencyKey",
    "Invitation",
    "Invoice",
    "InvoiceLine",
    "Member",
    "OutboxMessage",
    "PasswordReset",
    "PeriodSeat",
    "Practice",
    "RotatedRefreshToken",
    "Session",
    "Statement",
    "StatementLine",
    "Subscription",
    "SubscriptionCharge",
    "SubscriptionPeriod",
    "VoidedInvoiceLine",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]
