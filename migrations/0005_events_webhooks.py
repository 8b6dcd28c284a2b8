"""Events (the practice feed) and webhooks: endpoints, their delivery queue and every attempt."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from models.events import EventType
from models.webhooks import WebhookDeliveryStatus
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0004_records')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Event',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('practice', fields.ForeignKeyField('models.Practice', source_field='practice_id', db_constraint=True, to_field='id', related_name='events', on_delete=OnDelete.RESTRICT)),
                ('sequence', fields.BigIntField()),
                ('position', fields.SmallIntField(default=0)),
                ('type', fields.CharEnumField(description='BILLING_ENTRY_RECORDED: BILLING_ENTRY_RECORDED\nSTATEMENT_GENERATED: STATEMENT_GENERATED\nINVOICE_CREATED: INVOICE_CREATED\nINVOICE_PAID: INVOICE_PAID\nINVOICE_VOIDED: INVOICE_VOIDED\nCHART_CREATED: CHART_CREATED\nCHART_UPDATED: CHART_UPDATED\nCHART_ASSIGNMENT_CHANGED: CHART_ASSIGNMENT_CHANGED\nMEMBER_JOINED: MEMBER_JOINED\nMEMBER_UPDATED: MEMBER_UPDATED\nMEMBER_DEACTIVATED: MEMBER_DEACTIVATED\nMEMBER_REACTIVATED: MEMBER_REACTIVATED', enum_type=EventType, max_length=40)),
                ('subject_type', fields.CharField(max_length=32)),
                ('subject_id', fields.UUIDField()),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'events', 'app': 'models', 'unique_together': (('practice_id', 'sequence', 'position'),), 'indexes': [Index(fields=['practice_id', 'type', 'sequence']), Index(fields=['created_at'])], 'pk_attr': 'id', 'table_description': 'Written in the transaction of the change, from the audit write path (resolvers/events.py).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WebhookEndpoint',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('practice', fields.ForeignKeyField('models.Practice', source_field='practice_id', db_constraint=True, to_field='id', related_name='webhook_endpoints', on_delete=OnDelete.RESTRICT)),
                ('api_token', fields.ForeignKeyField('models.ApiToken', source_field='api_token_id', db_constraint=True, to_field='id', related_name='webhook_endpoints', on_delete=OnDelete.RESTRICT)),
                ('created_by', fields.ForeignKeyField('models.Member', source_field='created_by_id', db_constraint=True, to_field='id', related_name='webhook_endpoints', on_delete=OnDelete.RESTRICT)),
                ('url', fields.CharField(max_length=2000)),
                ('description', fields.CharField(null=True, max_length=500)),
                ('event_types', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('secret_encrypted', fields.TextField(unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('deleted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'webhook_endpoints', 'app': 'models', 'indexes': [Index(fields=['practice_id', 'created_at'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WebhookDelivery',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('practice', fields.ForeignKeyField('models.Practice', source_field='practice_id', db_constraint=True, to_field='id', related_name='webhook_deliveries', on_delete=OnDelete.RESTRICT)),
                ('endpoint', fields.ForeignKeyField('models.WebhookEndpoint', source_field='endpoint_id', db_constraint=True, to_field='id', related_name='deliveries', on_delete=OnDelete.RESTRICT)),
                ('event', fields.ForeignKeyField('models.Event', source_field='event_id', db_constraint=True, to_field='id', related_name='deliveries', on_delete=OnDelete.RESTRICT)),
                ('status', fields.CharEnumField(default=WebhookDeliveryStatus.PENDING, description='PENDING: PENDING\nSUCCEEDED: SUCCEEDED\nFAILED: FAILED', enum_type=WebhookDeliveryStatus, max_length=16)),
                ('attempts', fields.IntField(default=0)),
                ('last_response_status', fields.IntField(null=True)),
                ('last_error', fields.CharField(null=True, max_length=500)),
                ('last_attempt_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('next_attempt_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'webhook_deliveries', 'app': 'models', 'unique_together': (('endpoint_id', 'event_id'),), 'indexes': [Index(fields=['status', 'next_attempt_at']), Index(fields=['endpoint_id', 'created_at']), Index(fields=['event_id'])], 'pk_attr': 'id', 'table_description': 'One event for one endpoint: written with the event, sent after the commit, retried with back-off.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WebhookAttempt',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('delivery', fields.ForeignKeyField('models.WebhookDelivery', source_field='delivery_id', db_constraint=True, to_field='id', related_name='attempt_rows', on_delete=OnDelete.RESTRICT)),
                ('attempted_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('response_status', fields.IntField(null=True)),
                ('error', fields.CharField(null=True, max_length=500)),
                ('duration_ms', fields.IntField(default=0)),
            ],
            options={'table': 'webhook_attempts', 'app': 'models', 'indexes': [Index(fields=['delivery_id', 'attempted_at'])], 'pk_attr': 'id', 'table_description': 'Each try of a delivery: when, the HTTP status (null without an answer) and why it failed.'},
            bases=['Model'],
        ),
    ]
