"""The one number codec of every DynamoDB item the service writes (prediction records, jobs, the
model registry): the lesson of the app this service replaces, whose numpy floats crashed its JSON
persistence.

Going in, Python and numpy floats and integers become ``Decimal(str(x))`` (``str`` of a numpy float32
is its shortest repr, so 0.1 stays 0.1). DynamoDB stores magnitudes from 1E-130 to under 1E+126
with at most 38 significant digits and refuses the whole item otherwise, so a number smaller than
that (a float64 probability can underflow far below it) is stored as 0.0, and NaN, infinity, a
larger number or a longer integer are refused with :class:`~classifier.errors.InvalidRecordError`
before any write. Coming out, Decimals become plain JSON numbers. :func:`to_json` gives an answer
the same figures a stored item reads back as.
"""

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import numpy as np

from classifier.errors import InvalidRecordError

# DynamoDB's number type: the smallest and (exclusive) largest magnitudes, significant digits.
DYNAMODB_SMALLEST = Decimal("1E-130")
DYNAMODB_LIMIT = Decimal("1E+126")
DYNAMODB_DIGITS = 38
STORED_ZERO = Decimal("0.0")  # what a float too small to store becomes; reads back as the float 0.0


def to_dynamo(value: Any) -> Any:
    """``value`` with every number as a Decimal DynamoDB accepts; NaN and infinity are refused."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return _storable(Decimal(int(value)), value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise InvalidRecordError(f"A record cannot hold {value!r}: only finite numbers are stored.")
        return _storable(Decimal(str(value)), value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidRecordError(f"A record cannot hold {value!r}: only finite numbers are stored.")
        return _storable(value, value)
    if isinstance(value, np.ndarray):
        return [to_dynamo(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): to_dynamo(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_dynamo(item) for item in value]
    if value is None or isinstance(value, (str, bytes)):
        return value  # bytes: a binary attribute (a kept model input)
    raise InvalidRecordError(f"A record cannot hold a {type(value).__name__}.")


def _storable(number: Decimal, value: Any) -> Decimal:
    """``number`` as DynamoDB will take it: 0.0 if it is too small to store, else itself."""
    if number and abs(number) < DYNAMODB_SMALLEST:
        return STORED_ZERO
    if abs(number) >= DYNAMODB_LIMIT or len(number.as_tuple().digits) > DYNAMODB_DIGITS:
        raise InvalidRecordError(
            f"A record cannot hold {value!r}: DynamoDB stores numbers under 1E+126 with at most "
            f"{DYNAMODB_DIGITS} significant digits."
        )
    return number


def _tiny(number: float) -> bool:
    return number != 0 and abs(number) < DYNAMODB_SMALLEST


def from_dynamo(value: Any) -> Any:
    """``value`` as read from DynamoDB, with Decimals turned into plain JSON numbers (int or float)."""
    if isinstance(value, Decimal):
        # Exponent 0 only: Decimal("2.6E+16") came from a float (str() of a float), so it reads back
        # as that float, as to_json answered it, not as the int 26000000000000000.
        return (
            int(value)
            if value == value.to_integral_value() and value.as_tuple().exponent == 0
            else float(value)
        )
    if isinstance(value, Mapping):
        return {key: from_dynamo(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [from_dynamo(item) for item in value]
    return value


def to_json(value: Any) -> Any:
    """``value`` with numpy scalars as plain Python numbers, the same figures a stored record reads back."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(str(value))
        return 0.0 if math.isfinite(number) and _tiny(number) else number
    if isinstance(value, np.ndarray):
        return [to_json(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    return value
