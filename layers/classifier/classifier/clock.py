"""The one timestamp format of every record the service writes (predictions, jobs, uploads).

ISO 8601 in UTC with microseconds and a ``Z`` suffix: fixed width, so timestamps sort as text
(the predictions index's range key relies on that), and precise enough that two records written
in the same second still order.
"""

from datetime import UTC, datetime

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc_now() -> str:
    """Now, as :func:`utc_timestamp` writes it."""
    return datetime.now(UTC).strftime(_FORMAT)


def utc_timestamp(seconds: float) -> str:
    """``seconds`` since the epoch in the service's timestamp format."""
    return datetime.fromtimestamp(seconds, UTC).strftime(_FORMAT)
