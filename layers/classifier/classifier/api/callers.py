"""Who is calling: the API key id API Gateway put in the request context, and that key's role.

Two roles. **Clients** predict, read and correct their own records, and read the models.
**Operators** may do everything: training data, retraining, promotion and rollback, and every
client's records. API keys identify callers for usage plans; by themselves they authorise nothing
(a key valid in a usage plan reaches every method of the plan's APIs), so the role is checked here,
in the function, on every operator route.

A key's role is its usage plan: a key in the operators' plan (``OPERATOR_USAGE_PLAN``, a name from
``template.yaml``) is an operator, any other valid key is a client. The functions ask API Gateway
which plans the key is in (``GetUsagePlans`` with ``keyId``) and keep the answer for
:data:`ROLE_CACHE_SECONDS`, so a warm sandbox asks once per key. No configured plan, or a request
without a key id, means client: the check fails closed. The owner of a record is the key *id*,
never the key itself.
"""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from classifier import aws
from classifier.errors import ForbiddenError
from classifier.settings import get_settings

ROLE_CACHE_SECONDS = (
    300.0  # how long a warm sandbox trusts a key's role (a removed operator key lasts this long)
)


class Role(StrEnum):
    CLIENT = "client"
    OPERATOR = "operator"


@dataclass(frozen=True)
class Caller:
    key_id: str  # the API key's id, as API Gateway names it in the request context ("" if none)
    role: Role

    @property
    def is_operator(self) -> bool:
        return self.role is Role.OPERATOR

    def require_operator(self, action: str) -> None:
        """Refuse a client with 403 ``forbidden``, before anything happens."""
        if not self.is_operator:
            raise ForbiddenError(f"This API key may not {action}: it needs an operator key.")


class RoleLookup:
    """Key id -> role, from the usage plans the key is in; cached per process. Thread-safe."""

    def __init__(
        self,
        plans_of: Callable[[str], list[str]],
        operator_plan: str,
        *,
        ttl_seconds: float = ROLE_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._plans_of = plans_of
        self._operator_plan = operator_plan
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: dict[str, tuple[Role, float]] = {}
        self._lock = threading.Lock()

    def role(self, key_id: str) -> Role:
        if not key_id or not self._operator_plan:
            return Role.CLIENT
        now = self._clock()
        with self._lock:
            cached = self._cache.get(key_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        role = Role.OPERATOR if self._operator_plan in self._plans_of(key_id) else Role.CLIENT
        with self._lock:
            self._cache[key_id] = (role, now + self._ttl)
        return role


def usage_plans_of(key_id: str) -> list[str]:
    """The names of the usage plans ``key_id`` belongs to (API Gateway's GetUsagePlans, paginated)."""
    names, position = [], None
    while True:
        page = aws.client("apigateway").get_usage_plans(
            keyId=key_id, **({"position": position} if position else {})
        )
        names += [plan.get("name", "") for plan in page.get("items", [])]
        position = page.get("position")
        if not position:
            return names


_lookup: RoleLookup | None = None
_lookup_lock = threading.Lock()


def get_lookup() -> RoleLookup:
    global _lookup
    with _lookup_lock:
        if _lookup is None:
            _lookup = RoleLookup(usage_plans_of, get_settings().operator_usage_plan)
        return _lookup


def set_lookup(lookup: RoleLookup | None) -> None:
    """Replace the process's lookup (tests); None makes the next call build the default."""
    global _lookup
    with _lookup_lock:
        _lookup = lookup


def key_id_of(event: Any) -> str:
    """The caller's API key id (no role lookup: what the predict routes record as the owner)."""
    return event.request_context.identity.api_key_id or ""


def caller_of(event: Any) -> Caller:
    """The caller of an API Gateway proxy event (a Powertools ``APIGatewayProxyEvent``)."""
    key_id = key_id_of(event)
    return Caller(key_id=key_id, role=get_lookup().role(key_id))
