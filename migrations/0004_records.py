"""Void invoices keep their former charges (voided_invoice_lines), freeing the charges for a new invoice."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0003_idempotency_keys')]

    initial = False

    operations = [
        ops.CreateModel(
            name='VoidedInvoiceLine',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('invoice', fields.ForeignKeyField('models.Invoice', source_field='invoice_id', db_constraint=True, to_field='id', related_name='voided_lines', on_delete=OnDelete.RESTRICT)),
                ('entry', fields.ForeignKeyField('models.BillingEntry', source_field='entry_id', db_constraint=True, to_field='id', related_name='voided_invoice_lines', on_delete=OnDelete.RESTRICT)),
            ],
            options={'table': 'voided_invoice_lines', 'app': 'models', 'unique_together': (('invoice_id', 'entry_id'),), 'indexes': [Index(fields=['entry_id'])], 'pk_attr': 'id', 'table_description': "A charge that was on an invoice before it was voided. Voiding moves the invoice's lines here, which frees"},
            bases=['Model'],
        ),
    ]
