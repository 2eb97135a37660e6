"""What every provider adapter offers, and the per-event-loop client cache."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from gateway.routing import Deployment
from gateway.types import ChatRequest, ChatResult, EmbedResult, StreamEvent


class Provider(Protocol):
    async def complete(
        self, request: ChatRequest, deployment: Deployment, timeout: float
    ) -> ChatResult: ...

    def stream(
        self, request: ChatRequest, deployment: Deployment, timeout: float
    ) -> AsyncIterator[StreamEvent]: ...

    async def embed(
        self,
        texts: list[str],
        deployment: Deployment,
        timeout: float,
        dimensions: int | None = None,
    ) -> EmbedResult: ...


class ClientCache:
    """One SDK client per deployment and event loop: connection pools are reused across calls,
    and a client is never used from a loop other than the one its connections belong to."""

    def __init__(self, factory: Callable[[Deployment], object]) -> None:
        self._factory = factory
        self._clients: dict[
            tuple[int, str, str | None], tuple[asyncio.AbstractEventLoop, object]
        ] = {}

    def get(self, deployment: Deployment):
        loop = asyncio.get_running_loop()
        key = (id(loop), deployment.name, deployment.base_url)
        hit = self._clients.get(key)
        if hit is not None and hit[0] is loop:
            return hit[1]
        for stale in [k for k, (lp, _) in self._clients.items() if lp.is_closed()]:
            del self._clients[stale]
        client = self._factory(deployment)
        self._clients[key] = (loop, client)
        return client


def get_provider(deployment: Deployment) -> Provider:
    if deployment.wire_format == "anthropic":
        from gateway.providers.anthropic import PROVIDER
    else:
        from gateway.providers.openai import PROVIDER
    return PROVIDER
