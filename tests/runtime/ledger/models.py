"""Models of the test-only ledger-service."""

from tortoise import fields
from tortoise.models import Model


class Entry(Model):
    id = fields.IntField(primary_key=True)
    text = fields.CharField(max_length=100)

    class Meta:
        app = "ledger"
        table = "ledger_entries"
