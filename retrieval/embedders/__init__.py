"""Embedders: texts to vectors for document chunks, queries and the semantic cache."""

from retrieval.embedders.base import Embedder, EmbedderUnavailable
from retrieval.embedders.local import LocalMiniLMEmbedder, get_local_embedder

__all__ = ["Embedder", "EmbedderUnavailable", "LocalMiniLMEmbedder", "get_local_embedder"]
