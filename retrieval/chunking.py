"""Blocks to chunks: by structure (one section per heading path, paragraphs kept whole where they
fit) within a token budget, with an overlap of whole sentences between consecutive chunks of a
section so that an answer straddling a cut is still found."""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import groupby

from retrieval.parsing import Block
from retrieval.tokens import count_tokens, split_tokens

# all-MiniLM-L6-v2 reads 256 word pieces; 200 cl100k tokens (plus the title and heading path
# prepended for embedding) stay within it for English text.
DEFAULT_MAX_TOKENS = 200
DEFAULT_OVERLAP_TOKENS = 30

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")


@dataclass(frozen=True)
class ChunkDraft:
    text: str
    heading_path: tuple[str, ...]
    page: int | None
    token_count: int


@dataclass(frozen=True)
class _Piece:
    text: str
    tokens: int
    page: int | None
    joiner: str  # what goes between this piece and the previous one


def chunk_blocks(
    blocks: list[Block],
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
) -> list[ChunkDraft]:
    """Chunks of at most ``max_tokens`` tokens, in document order, never spanning two sections
    or two pages (so a citation's page is exact)."""
    if max_tokens < 8 or not 0 <= overlap_tokens < max_tokens // 2:
        raise ValueError("max_tokens must be >= 8 and overlap_tokens < max_tokens / 2")
    drafts: list[ChunkDraft] = []
    for (heading_path, _page), section in groupby(blocks, key=lambda b: (b.heading_path, b.page)):
        pieces = [p for block in section for p in _pieces(block, max_tokens)]
        drafts.extend(_pack(pieces, heading_path, max_tokens, overlap_tokens))
    return drafts


def _pieces(block: Block, max_tokens: int) -> list[_Piece]:
    tokens = count_tokens(block.text)
    if tokens <= max_tokens:
        return [_Piece(block.text, tokens, block.page, "\n\n")]
    pieces: list[_Piece] = []
    for sentence in _SENTENCE_END.split(block.text):
        joiner = "\n\n" if not pieces else " "
        sentence_tokens = count_tokens(sentence)
        if sentence_tokens <= max_tokens:
            pieces.append(_Piece(sentence, sentence_tokens, block.page, joiner))
            continue
        for part in split_tokens(sentence, max_tokens - 2):
            pieces.append(_Piece(part, count_tokens(part), block.page, joiner))
            joiner = ""
    return pieces


def _join(pieces: list[_Piece]) -> str:
    return "".join((p.joiner if i else "") + p.text for i, p in enumerate(pieces)).strip()


def _pack(
    pieces: list[_Piece], heading_path: tuple[str, ...], max_tokens: int, overlap_tokens: int
) -> list[ChunkDraft]:
    drafts: list[ChunkDraft] = []
    current: list[_Piece] = []
    overlap: list[_Piece] = []  # carried from the previous chunk; not counted as new content
    used = 0

    def emit() -> None:
        text = _join(overlap + current)
        page = current[0].page
        drafts.append(ChunkDraft(text, heading_path, page, count_tokens(text)))

    for piece in pieces:
        cost = piece.tokens + 1
        if current and used + cost > max_tokens:
            emit()
            overlap = _tail(overlap + current, overlap_tokens, max_tokens - cost)
            current, used = [], sum(p.tokens + 1 for p in overlap)
        current.append(piece)
        used += cost
    if current:
        emit()
    return drafts


def _tail(pieces: list[_Piece], overlap_tokens: int, room: int) -> list[_Piece]:
    """The last whole sentences of ``pieces`` that fit in the overlap and in ``room``."""
    budget = min(overlap_tokens, room)
    sentences = [s for s in _SENTENCE_END.split(_join(pieces)) if s.strip()]
    kept: list[_Piece] = []
    used = 0
    for sentence in reversed(sentences):
        tokens = count_tokens(sentence) + 1
        if used + tokens > budget:
            break
        kept.insert(0, _Piece(sentence, tokens - 1, None, " "))
        used += tokens
    return kept
