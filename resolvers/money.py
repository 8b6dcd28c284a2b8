"""Money as a value: exact Decimal amounts with a currency; rounding happens here and only here. Also how an amount
is read from a client (``read_decimal``, the contract's Decimal scalar)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
DEFAULT_CURRENCY = "USD"

# A plain decimal: ASCII digits, an optional sign, an optional point with digits on both sides ("1." and ".5" are
# refused, as are exponents, "_" separators, spaces, other scripts' digits, NaN and Infinity).
_PLAIN_DECIMAL = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")
# At most as many digits as the default decimal context holds: such a number is exact, and nothing computed from it
# comes near the context's exponent limits (an exponent such as 1e999999999 overflowed as soon as it was compared).
MAX_DIGITS = 28
NOT_PLAIN = "must be a plain decimal such as 12.50: ASCII digits, an optional sign and decimal point"
TOO_MANY_DIGITS = f"has more than {MAX_DIGITS} digits"


class UnreadableDecimal(Decimal):
    """What the Decimal scalar makes of a value that is not a plain decimal: a NaN, so that any check of finiteness
    refuses it, with the ``reason`` to give. Refused where the input's field is known (``validation.amount``),
    so the refusal is BAD_USER_INPUT naming that field whether the value came as a literal or as a variable."""

    reason: str

    @classmethod
    def because(cls, reason: str) -> UnreadableDecimal:
        value = cls("NaN")
        value.reason = reason
        return value


def read_decimal(value: object) -> Decimal:
    """A client's Decimal: only a string holding a plain decimal of at most MAX_DIGITS digits is read as a number
    (JSON numbers are refused: their digits are whatever the client's float printed)."""
    if not isinstance(value, str) or not _PLAIN_DECIMAL.fullmatch(value):
        return UnreadableDecimal.because(NOT_PLAIN)
    if len(value) - value.startswith(("+", "-")) - ("." in value) > MAX_DIGITS:
        return UnreadableDecimal.because(TOO_MANY_DIGITS)
    return Decimal(value)


def round_cents(amount: Decimal) -> Decimal:
    """Half-up to the cent: used only where a charge is made or a balance is shown."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: str = DEFAULT_CURRENCY

    @classmethod
    def zero(cls, currency: str = DEFAULT_CURRENCY) -> Money:
        return cls(Decimal("0.00"), currency)

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount - other.amount, self.currency)

    def rounded(self) -> Money:
        return Money(round_cents(self.amount), self.currency)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"cannot mix {self.currency} and {other.currency}")
