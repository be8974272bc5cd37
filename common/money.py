"""Amounts of USD as the API shows them: one format everywhere, a decimal string with 8 places
("0.12289000"), the scale the ledger stores, so a client can compare and add them as text."""

from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

USD_PLACES = 8
_QUANTUM = Decimal(1).scaleb(-USD_PLACES)


def usd(value: Decimal | int | float | str | None) -> str:
    """`value` as the API shows USD (None, as the database sums nothing, is 0)."""
    return format(Decimal(value or 0).quantize(_QUANTUM), "f")


@extend_schema_field({"type": "string", "format": "decimal", "pattern": r"^\d+\.\d{8}$", "example": "0.12289000"})
class UsdField(serializers.Field):
    """A read-only amount of USD in the API's one format."""

    def __init__(self, **kwargs):
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, value):
        return usd(value)
