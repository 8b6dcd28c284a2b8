"""Refresh races: a token replaced by a grace refresh before its holder used it stays good for one exchange."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0004_records')]

    initial = False

    operations = [
        ops.AlterModelOptions(
            name='RotatedRefreshToken',
            options={'table': 'rotated_refresh_tokens', 'app': 'models', 'pk_attr': 'token_hash', 'table_description': "A refresh token that is no longer its session's newest (``Session.refresh_token_hash``)."},
        ),
        ops.AddField(
            model_name='RotatedRefreshToken',
            name='unused',
            field=fields.BooleanField(default=False),
        ),
    ]
