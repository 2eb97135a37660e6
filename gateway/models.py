"""Public-schema operational state shared by every web and worker process."""

from django.db import models


class CircuitState(models.Model):
    """One deployment's circuit breaker (used when no REDIS_URL is configured)."""

    deployment = models.CharField(max_length=200, unique=True)
    state = models.CharField(max_length=10, default="closed")  # closed | open | half_open
    consecutive_failures = models.PositiveIntegerField(default=0)
    opened_until = models.DateTimeField(null=True, blank=True)
    probe_until = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=200, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.deployment}: {self.state}"
