"""A fake model provider: a real HTTP server on loopback speaking the OpenAI and Anthropic wire
formats, with injectable faults. Used by the tests (through the official SDKs), by `make run`
as the `simulated` deployment when no provider key is configured, and by the benchmarks."""

from gateway.simulator.server import SimulatorServer

__all__ = ["SimulatorServer"]
