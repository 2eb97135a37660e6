"""Provider adapters: the only modules that import a provider SDK."""

from gateway.providers.base import get_provider

__all__ = ["get_provider"]
