"""A covering index for balance sums (billing_balances: practice, clinician, balance_cents)."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0001_initial')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='BillingBalance',
            index=Index(fields=['practice_id', 'clinician_id', 'balance_cents']),
        ),
    ]
