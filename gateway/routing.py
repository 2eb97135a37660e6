"""The routing table: deployments, aliases and prices from ``config/models.yaml``.

Loaded once per process and reloaded when the file (or its path setting) changes, checked at most
every few seconds. Provider keys come only from the environment variable a deployment names.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import yaml

from gateway.errors import RoutingConfigError

logger = logging.getLogger(__name__)

PROVIDERS = {"openai", "anthropic", "openai_compatible", "simulated"}
CAPABILITIES = {"chat", "embeddings", "json_schema"}
_MILLION = Decimal(1_000_000)
_COST_QUANTUM = Decimal("0.00000001")
_BASE_URL_ENV = {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL"}
_CHECK_EVERY_SECONDS = 3.0


@dataclass(frozen=True)
class Deployment:
    name: str
    provider: str  # openai | anthropic | openai_compatible | simulated
    model: str
    base_url: str | None
    api_key_env: str | None
    timeout_s: float
    max_retries: int
    price_input_per_mtok: Decimal
    price_output_per_mtok: Decimal
    context_window: int
    max_output_tokens: int
    supports: frozenset[str]

    @property
    def provider_family(self) -> str:
        """What a tenant's ``allowed_providers`` names: openai, anthropic, self_hosted, simulated."""
        return "self_hosted" if self.provider == "openai_compatible" else self.provider

    @property
    def wire_format(self) -> str:
        return "anthropic" if self.provider == "anthropic" else "openai"

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def cost(self, input_tokens: int, output_tokens: int) -> Decimal:
        raw = (
            self.price_input_per_mtok * input_tokens + self.price_output_per_mtok * output_tokens
        ) / _MILLION
        return raw.quantize(_COST_QUANTUM)


class RoutingTable:
    def __init__(
        self,
        *,
        version: str,
        deployments: dict[str, Deployment],
        aliases: dict[str, list[str]],
        simulated_only: bool,
    ) -> None:
        self.version = version
        self.deployments = deployments
        self._aliases = aliases
        self.simulated_only = simulated_only

    def resolve(self, alias: str) -> list[Deployment]:
        """Ordered deployments for an alias; KeyError when the alias is unknown."""
        return [self.deployments[name] for name in self._aliases[alias]]

    def aliases(self) -> list[str]:
        return sorted(self._aliases)

    def cost(self, deployment: str, input_tokens: int, output_tokens: int) -> Decimal:
        return self.deployments[deployment].cost(input_tokens, output_tokens)


def _decimal(value, where: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise RoutingConfigError(f"{where}: {value!r} is not a decimal price") from None
    if number < 0 or not number.is_finite():
        raise RoutingConfigError(f"{where}: a price must be a non-negative number")
    return number


def _deployment(raw: dict, env: dict[str, str], simulator_url: str) -> Deployment:
    if not isinstance(raw, dict) or not raw.get("name"):
        raise RoutingConfigError("every deployment needs a name")
    name = str(raw["name"])
    where = f"deployment {name!r}"
    provider = raw.get("provider")
    if provider not in PROVIDERS:
        raise RoutingConfigError(f"{where}: provider must be one of {sorted(PROVIDERS)}")
    unknown = set(raw) - {
        "name",
        "provider",
        "model",
        "base_url",
        "api_key_env",
        "timeout_s",
        "max_retries",
        "price_input_per_mtok",
        "price_output_per_mtok",
        "context_window",
        "max_output_tokens",
        "supports",
    }
    if unknown:
        raise RoutingConfigError(f"{where}: unknown field(s) {sorted(unknown)}")
    if not raw.get("model"):
        raise RoutingConfigError(f"{where}: model is required")
    supports = frozenset(raw.get("supports") or ["chat"])
    if not supports <= CAPABILITIES:
        raise RoutingConfigError(f"{where}: supports must be within {sorted(CAPABILITIES)}")
    base_url = raw.get("base_url")
    if provider == "simulated":
        base_url = base_url or simulator_url.rstrip("/") + "/v1"
    elif not base_url and provider in _BASE_URL_ENV:
        base_url = env.get(_BASE_URL_ENV[provider]) or None
    if provider == "openai_compatible" and not base_url:
        raise RoutingConfigError(f"{where}: an openai_compatible deployment needs a base_url")
    try:
        timeout_s = float(raw.get("timeout_s", 30))
        max_retries = int(raw.get("max_retries", 2))
        context_window = int(raw.get("context_window", 8192))
        max_output = int(raw.get("max_output_tokens", 4096))
    except (TypeError, ValueError) as exc:
        raise RoutingConfigError(f"{where}: {exc}") from None
    if timeout_s <= 0 or max_retries < 0 or context_window <= 0 or max_output <= 0:
        raise RoutingConfigError(f"{where}: timeouts, retries and sizes must be positive")
    return Deployment(
        name=name,
        provider=provider,
        model=str(raw["model"]),
        base_url=base_url,
        api_key_env=raw.get("api_key_env"),
        timeout_s=timeout_s,
        max_retries=max_retries,
        price_input_per_mtok=_decimal(raw.get("price_input_per_mtok", "0"), where),
        price_output_per_mtok=_decimal(raw.get("price_output_per_mtok", "0"), where),
        context_window=context_window,
        max_output_tokens=max_output,
        supports=supports,
    )


def parse_routing(text: str, *, env: dict[str, str], simulator_url: str) -> RoutingTable:
    """Validate a routing document strictly; RoutingConfigError names what is wrong."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RoutingConfigError(f"not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RoutingConfigError("the routing file must be a mapping")
    deployments: dict[str, Deployment] = {}
    for raw in data.get("deployments") or []:
        deployment = _deployment(raw, env, simulator_url)
        if deployment.name in deployments:
            raise RoutingConfigError(f"deployment {deployment.name!r} is defined twice")
        deployments[deployment.name] = deployment
    raw_aliases = data.get("aliases") or {}
    if not isinstance(raw_aliases, dict) or not raw_aliases:
        raise RoutingConfigError("aliases must map each alias to a list of deployments")
    for alias, names in raw_aliases.items():
        if not isinstance(names, list) or not names:
            raise RoutingConfigError(f"alias {alias!r} needs a non-empty list of deployments")
        for name in names:
            if name not in deployments:
                raise RoutingConfigError(f"alias {alias!r} names unknown deployment {name!r}")

    def usable(d: Deployment) -> bool:
        return d.provider in {"simulated", "openai_compatible"} or bool(
            d.api_key_env and env.get(d.api_key_env)
        )

    aliases: dict[str, list[str]] = {}
    replaced = 0
    simulated = [d.name for d in deployments.values() if d.provider == "simulated"]
    for alias, names in raw_aliases.items():
        kept = [n for n in names if usable(deployments[n])]
        if not kept and simulated:
            kept = simulated[:1]
            replaced += 1
        if kept:
            aliases[str(alias)] = kept
        else:
            logger.warning("alias %s has no deployment with a configured key", alias)
    if simulated:
        aliases.setdefault("simulated", simulated[:1])
    simulated_only = bool(aliases) and all(
        deployments[n].provider == "simulated" for names in aliases.values() for n in names
    )
    return RoutingTable(
        version=str(data.get("version", "")),
        deployments=deployments,
        aliases=aliases,
        simulated_only=simulated_only,
    )


class _Loader:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._table: RoutingTable | None = None
        self._signature: tuple | None = None
        self._checked = 0.0

    def get(self) -> RoutingTable:
        from django.conf import settings

        now = time.monotonic()
        path = Path(settings.SWITCHBOARD_MODELS_FILE)
        if (
            self._table is not None
            and now - self._checked < _CHECK_EVERY_SECONDS
            and self._signature
            and self._signature[0] == str(path)
        ):
            return self._table
        with self._lock:
            try:
                mtime = path.stat().st_mtime_ns
            except OSError:
                raise RoutingConfigError(f"routing file {path} cannot be read") from None
            env_keys = tuple(
                sorted(
                    (k, bool(v))
                    for k, v in os.environ.items()
                    if k.endswith(("_API_KEY", "_BASE_URL"))
                )
            )
            signature = (str(path), mtime, env_keys, settings.SWITCHBOARD_SIMULATOR_URL)
            if self._table is None or signature != self._signature:
                self._table = parse_routing(
                    path.read_text(),
                    env=dict(os.environ),
                    simulator_url=settings.SWITCHBOARD_SIMULATOR_URL,
                )
                self._signature = signature
            self._checked = now
            return self._table


_loader = _Loader()


def get_routing_table() -> RoutingTable:
    return _loader.get()
