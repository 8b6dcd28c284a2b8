"""Idempotency keys (idempotency_keys): one row per (practice, caller, key), purged after 24 hours."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from models.idempotency import IdempotencyStatus
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0002_billing_balance_sums')]

    initial = False

    operations = [
        ops.CreateModel(
            name='IdempotencyKey',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('practice', fields.ForeignKeyField('models.Practice', source_field='practice_id', db_constraint=True, to_field='id', related_name='idempotency_keys', on_delete=OnDelete.CASCADE)),
                ('caller', fields.CharField(max_length=64)),
                ('key_hash', fields.CharField(max_length=64)),
                ('mutation', fields.CharField(max_length=64)),
                ('input_hash', fields.CharField(max_length=64)),
                ('status', fields.CharEnumField(default=IdempotencyStatus.RUNNING, description='RUNNING: RUNNING\nDONE: DONE', enum_type=IdempotencyStatus, max_length=16)),
                ('result', fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'idempotency_keys', 'app': 'models', 'unique_together': (('practice_id', 'caller', 'key_hash'),), 'indexes': [Index(fields=['created_at'])], 'pk_attr': 'id', 'table_description': 'One key of one caller in one practice, written in the same transaction as the mutation it guards.'},
            bases=['Model'],
        ),
    ]
