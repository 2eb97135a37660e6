"""Circuit-breaker state in PostgreSQL (public schema), shared by every process and machine.

Used when no ``REDIS_URL`` is configured. Every transition is one atomic statement, so two
processes recording failures at once cannot lose a count or let two probes through.
"""

from __future__ import annotations

import time

from asgiref.sync import sync_to_async
from django.db import connection

from gateway.models import CircuitState

_TABLE = CircuitState._meta.db_table


def _execute(sql: str, params: list) -> tuple | None:
    # The public schema is named explicitly: this state is shared, not a tenant's.
    with connection.cursor() as cursor:
        cursor.execute(sql.replace("{table}", f"public.{_TABLE}"), params)
        return cursor.fetchone() if cursor.description else None


_RECORD_FAILURE = """
INSERT INTO {table} (deployment, state, consecutive_failures, opened_until, probe_until,
                     last_error, updated_at)
VALUES (%(d)s, CASE WHEN %(threshold)s <= 1 THEN 'open' ELSE 'closed' END, 1,
        CASE WHEN %(threshold)s <= 1 THEN now() + make_interval(secs => %(cooldown)s) END,
        NULL, %(error)s, now())
ON CONFLICT (deployment) DO UPDATE SET
    consecutive_failures = {table}.consecutive_failures + 1,
    state = CASE
        WHEN {table}.state = 'half_open'
          OR {table}.consecutive_failures + 1 >= %(threshold)s THEN 'open'
        ELSE {table}.state END,
    opened_until = CASE
        WHEN {table}.state = 'half_open'
          OR ({table}.state = 'closed' AND {table}.consecutive_failures + 1 >= %(threshold)s)
          THEN now() + make_interval(secs => %(cooldown)s)
        ELSE {table}.opened_until END,
    probe_until = NULL,
    last_error = %(error)s,
    updated_at = now()
RETURNING state
"""

_RECORD_SUCCESS = """
UPDATE {table} SET state = 'closed', consecutive_failures = 0, opened_until = NULL,
                   probe_until = NULL, updated_at = now()
WHERE deployment = %(d)s AND (state <> 'closed' OR consecutive_failures <> 0)
"""

# closed → allowed; open past its cool-down (or half-open whose probe timed out) → this caller
# becomes the single probe; otherwise refused.
_ACQUIRE = """
WITH current AS (
    SELECT state, opened_until, probe_until FROM {table} WHERE deployment = %(d)s FOR UPDATE
), probe AS (
    UPDATE {table} t SET state = 'half_open',
        probe_until = now() + make_interval(secs => %(probe_timeout)s), updated_at = now()
    FROM current c
    WHERE t.deployment = %(d)s AND (
        (c.state = 'open' AND c.opened_until <= now())
        OR (c.state = 'half_open' AND c.probe_until <= now()))
    RETURNING 'probe'::text AS verdict
)
SELECT COALESCE(
    (SELECT verdict FROM probe),
    (SELECT CASE WHEN state = 'closed' THEN 'allow' ELSE 'deny' END FROM current),
    'allow')
"""


class PostgresBreakerStore:
    """Async breaker store over the ``gateway_circuitstate`` table.

    A deployment seen closed is trusted for ``closed_cache_s`` without asking the database again
    (the hot path then costs no round trip); a circuit opened by another process is therefore
    noticed within that time. Failures are always written through.
    """

    def __init__(
        self,
        *,
        threshold: int,
        cooldown_s: float,
        probe_timeout_s: float = 30.0,
        closed_cache_s: float = 1.0,
    ):
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.probe_timeout_s = probe_timeout_s
        self.closed_cache_s = closed_cache_s
        self._closed_until: dict[str, float] = {}

    def _failure(self, deployment: str, error: str) -> str:
        row = _execute(
            _RECORD_FAILURE,
            {
                "d": deployment,
                "threshold": self.threshold,
                "cooldown": self.cooldown_s,
                "error": error[:200],
            },
        )
        return row[0]

    def _success(self, deployment: str) -> None:
        _execute(_RECORD_SUCCESS, {"d": deployment})

    def _acquire(self, deployment: str) -> str:
        row = _execute(_ACQUIRE, {"d": deployment, "probe_timeout": self.probe_timeout_s})
        return row[0]

    def _state(self, deployment: str) -> str:
        row = CircuitState.objects.filter(deployment=deployment).values_list("state").first()
        return row[0] if row else "closed"

    async def record_failure(self, deployment: str, error: str = "") -> str:
        self._closed_until.pop(deployment, None)
        return await sync_to_async(self._failure)(deployment, error)

    async def record_success(self, deployment: str) -> None:
        if self._closed_until.get(deployment, 0.0) > time.monotonic():
            return  # known closed with no failures since: nothing to reset
        await sync_to_async(self._success)(deployment)
        self._closed_until[deployment] = time.monotonic() + self.closed_cache_s

    async def acquire(self, deployment: str) -> str:
        """'allow', 'probe' (this caller is the one probe) or 'deny'."""
        if self._closed_until.get(deployment, 0.0) > time.monotonic():
            return "allow"
        verdict = await sync_to_async(self._acquire)(deployment)
        if verdict == "allow":
            self._closed_until[deployment] = time.monotonic() + self.closed_cache_s
        return verdict

    async def get_state(self, deployment: str) -> str:
        return await sync_to_async(self._state)(deployment)
