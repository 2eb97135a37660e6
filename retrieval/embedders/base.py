"""What every embedder looks like to retrieval and the semantic cache."""

from typing import Protocol, runtime_checkable


class EmbedderUnavailable(Exception):
    """The embedder cannot serve: its model files, package or provider are missing or down."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit vectors of one embedding space.

    ``name`` identifies that space (model and anything else that changes the vectors), so vectors
    stored under one name are never compared with vectors from another.
    """

    name: str
    dimensions: int

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Return one L2-normalised vector of ``dimensions`` floats per text, in input order."""
        ...
