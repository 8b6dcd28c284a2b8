"""Input checks shared by every area: each failure is BAD_USER_INPUT naming the offending input field."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal, InvalidOperation
from typing import Literal, ParamSpec, TypeVar, cast, overload

from email_validator import EmailNotValidError, validate_email
from tortoise.fields import CharField
from tortoise.models import Model

from auth import passwords
from auth.passwords import MAX_LENGTH as PASSWORD_MAX
from auth.passwords import MIN_LENGTH as PASSWORD_MIN
from errors import BadInput, BadInputs
from resolvers.money import UnreadableDecimal

log = logging.getLogger("groups_api.validation")

P = ParamSpec("P")
T = TypeVar("T")


class Form:
    """The checks of one input's fields, every one of them run: ``done()`` refuses every invalid field at once (one
    BAD_USER_INPUT error each, see errors.BadInputs), so a form with two bad fields needs one round trip, not two.

    ``check`` answers the checked value; for a refused field it answers None typed as the value, which nothing may
    use: ``done()`` raises before any use."""

    def __init__(self) -> None:
        self.refusals: list[BadInput] = []

    def check(self, check: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return check(*args, **kwargs)
        except BadInput as refused:
            self.refusals.append(refused)
            return cast(T, None)

    async def check_async(self, check: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await check(*args, **kwargs)
        except BadInput as refused:
            self.refusals.append(refused)
            return cast(T, None)

    def done(self) -> None:
        if len(self.refusals) == 1:
            raise self.refusals[0]
        if self.refusals:
            raise BadInputs(self.refusals)


def email(value: str, *, field: str = "input.email") -> str:
    """Trimmed, syntax-checked (no DNS), lower-cased: emails compare case-insensitively."""
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise BadInput(f"invalid email: {exc}", field=field) from None
    return result.normalized.lower()


@overload
def text(value: str | None, *, field: str, max_length: int = 200, required: Literal[True] = True) -> str: ...


@overload
def text(value: str | None, *, field: str, max_length: int = 200, required: bool) -> str | None: ...


def text(value: str | None, *, field: str, max_length: int = 200, required: bool = True) -> str | None:
    """Trimmed text of at most ``max_length`` characters; blank is refused when ``required``, else None."""
    cleaned = (value or "").strip()
    if not cleaned:
        if required:
            raise BadInput(f"{field.rsplit('.', 1)[-1]} is required", field=field)
        return None
    if len(cleaned) > max_length:
        raise BadInput(f"{field.rsplit('.', 1)[-1]} is longer than {max_length} characters", field=field)
    return cleaned


_PHONE = re.compile(r"\+?[0-9 ().-]+")
PHONE_MAX_LENGTH = 40


def phone(value: str, *, field: str = "input.phone") -> str:
    """Trimmed, inner spaces collapsed: digits with an optional leading + and the usual separators, 7 to 15 digits
    (E.164 numbers have at most 15)."""
    cleaned = " ".join(value.split())
    digits = sum(c.isdigit() for c in cleaned)
    if len(cleaned) > PHONE_MAX_LENGTH or not _PHONE.fullmatch(cleaned) or not 7 <= digits <= 15:
        raise BadInput(
            "invalid phone number: use digits, an optional leading +, spaces, dots, dashes or parentheses", field=field
        )
    return cleaned


# zxcvbn scores 0 (too guessable) to 4 (very unguessable); 3 is "safely unguessable" (about 10^10 guesses).
PASSWORD_MIN_SCORE = 3
_WORDS = re.compile(r"[\W_]+")


def password_length(value: str, *, field: str = "input.password") -> str:
    """The cheap half of the password rules (at least 12 characters, at most 256), for a check before anything else."""
    if len(value) < PASSWORD_MIN:
        raise BadInput(f"password must have at least {PASSWORD_MIN} characters", field=field)
    if len(value) > PASSWORD_MAX:
        raise BadInput(f"password must have at most {PASSWORD_MAX} characters", field=field)
    return value


async def new_password(value: str, *, field: str = "input.password", about: Iterable[str | None] = ()) -> str:
    """The rules of every password being set (sign-up, accepting an invitation, reset, change): its length, and a
    zxcvbn score of at least 3, the words ``about`` the person and the practice (name, email, practice name) counting
    as guessable. A refusal carries zxcvbn's feedback as its message."""
    password_length(value, field=field)
    try:
        strength = await passwords.strength_async(value, password_words(about))
    except Exception:  # an estimator that cannot read a password does not let it through
        log.exception("zxcvbn could not score a password")
        raise BadInput("this password could not be checked: choose another one", field=field) from None
    if strength.score < PASSWORD_MIN_SCORE:
        feedback = " ".join(part for part in (strength.warning, *strength.suggestions) if part)
        raise BadInput(
            f"this password is too easy to guess. {feedback or 'Add another word or two: uncommon words are better.'}",
            field=field,
        )
    return value


def password_words(about: Iterable[str | None]) -> list[str]:
    """Each text whole, word by word and with its words run together (an email also by its local part and domain),
    for zxcvbn's user inputs."""
    words: list[str] = []
    for text in about:
        if not text:
            continue
        lowered = text.strip().lower()
        words.append(lowered)
        if "@" in lowered:
            local, _, domain = lowered.rpartition("@")
            words += [local, domain]
        parts = [w for w in _WORDS.split(lowered) if w]
        words += [w for w in parts if len(w) >= 3]
        if len(parts) > 1:
            words.append("".join(parts))
    return list(dict.fromkeys(words))


def amount(value: Decimal | str, *, field: str, max_value: Decimal, allow_negative: bool = False) -> Decimal:
    """A money amount with at most two decimals, non-zero, within +-max_value (positive unless allow_negative).
    What the Decimal scalar could not read (``money.UnreadableDecimal``) is refused here, where the field is known."""
    if isinstance(value, UnreadableDecimal):
        raise BadInput(f"amount {value.reason}", field=field)
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise BadInput("amount is not a number", field=field) from None
    if not number.is_finite():
        raise BadInput("amount is not a number", field=field)
    if number.copy_abs() > max_value:  # copy_abs, unlike abs(), does not round: it cannot overflow
        # Checked before the decimals: quantizing a number of more digits than the decimal context holds (28)
        # raises InvalidOperation.
        raise BadInput(f"amount must not exceed {max_value}", field=field)
    exponent = number.as_tuple().exponent  # an int for a finite number
    if isinstance(exponent, int) and exponent < -2 and number != number.quantize(Decimal("0.01")):
        raise BadInput("amount has more than two decimals", field=field)
    if number == 0:
        raise BadInput("amount must not be zero", field=field)
    if number < 0 and not allow_negative:
        raise BadInput("amount must be positive", field=field)
    return number.quantize(Decimal("0.01"))


def fits_column(value: str, model: type[Model], column: str) -> bool:
    """Whether ``value`` fits the text column ``column`` of ``model``. A longer value matches no row, and Tortoise
    refuses to filter on it (a ValidationError, which would be INTERNAL): lookups check this first."""
    return len(value) <= cast(CharField, model._meta.fields_map[column]).max_length
