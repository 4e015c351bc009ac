"""The one number codec of every DynamoDB item the service writes (prediction records, jobs, the
model registry): the lesson of the app this service replaces, whose numpy floats crashed its JSON
persistence.

Going in, Python and numpy floats and integers become ``Decimal(str(x))`` (``str`` of a numpy float32
is its shortest repr, so 0.1 stays 0.1); NaN and infinity are refused with
:class:`~classifier.errors.InvalidRecordError`. Coming out, Decimals become plain JSON numbers.
:func:`to_json` gives an answer the same figures a stored item reads back as.
"""

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import numpy as np

from classifier.errors import InvalidRecordError


def to_dynamo(value: Any) -> Any:
    """``value`` with every number as a Decimal DynamoDB accepts; NaN and infinity are refused."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return Decimal(int(value))
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise InvalidRecordError(f"A record cannot hold {value!r}: only finite numbers are stored.")
        return Decimal(str(value))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidRecordError(f"A record cannot hold {value!r}: only finite numbers are stored.")
        return value
    if isinstance(value, np.ndarray):
        return [to_dynamo(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): to_dynamo(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_dynamo(item) for item in value]
    if value is None or isinstance(value, (str, bytes)):
        return value  # bytes: a binary attribute (a kept model input)
    raise InvalidRecordError(f"A record cannot hold a {type(value).__name__}.")


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
    if isinstance(value, np.floating):
        return float(str(value))
    if isinstance(value, np.ndarray):
        return [to_json(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    return value
