"""Documents to structured text blocks: plain text, Markdown, HTML and PDF.

Every parser returns ``Block``s (a paragraph of text with the heading path above it and, for
PDF, its page) or raises ``DocumentUnreadable`` with a reason a person can act on.
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from dataclasses import dataclass

SUPPORTED_MEDIA_TYPES = {
    "text/plain": "Plain text",
    "text/markdown": "Markdown",
    "text/html": "HTML",
    "application/pdf": "PDF",
}
EXTENSION_MEDIA_TYPES = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
}
_ALIASES = {"text/x-markdown": "text/markdown", "application/xhtml+xml": "text/html"}

_ATX_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_SETEXT_UNDERLINE = re.compile(r"^\s{0,3}(=+|-+)\s*$")
_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_HTML_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_HTML_BLOCKS = ("p", "li", "pre", "blockquote", "td", "th", "dd", "dt", "figcaption")
_HTML_CONTAINERS = ("div", "section", "article", "main", "body")


class DocumentUnreadable(Exception):
    """The document cannot be turned into text (corrupt, encrypted, empty, wrong encoding)."""


@dataclass(frozen=True)
class Block:
    text: str
    heading_path: tuple[str, ...] = ()
    page: int | None = None


def normalise_media_type(media_type: str, filename: str = "") -> str | None:
    """The supported media type meant by a declared type and/or a file name, or None."""
    declared = (media_type or "").split(";")[0].strip().lower()
    declared = _ALIASES.get(declared, declared)
    if declared in SUPPORTED_MEDIA_TYPES:
        return declared
    if declared in ("", "application/octet-stream", "binary/octet-stream") and filename:
        suffix = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
        return EXTENSION_MEDIA_TYPES.get(suffix)
    return None


def parse_document(content: bytes, media_type: str) -> list[Block]:
    """Structured text blocks of a document; raises ``DocumentUnreadable`` when there is none."""
    if media_type == "application/pdf":
        blocks = _parse_pdf(content)
    else:
        text = _decode(content)
        if media_type == "text/markdown":
            blocks = _parse_markdown(text)
        elif media_type == "text/html":
            blocks = _parse_html(text)
        else:
            blocks = _paragraphs(text, (), None)
    blocks = [b for b in blocks if b.text.strip()]
    if not blocks:
        raise DocumentUnreadable("The document contains no text.")
    return blocks


def _decode(content: bytes) -> str:
    if b"\x00" in content[:4096]:
        raise DocumentUnreadable("The file is binary, not text (it contains NUL bytes).")
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return content.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise DocumentUnreadable("The text is neither UTF-8 nor Windows-1252.") from exc


def _clean(text: str) -> str:
    return re.sub(r"[ \t\r\f\v]+", " ", text).strip()


def _paragraphs(text: str, heading_path: tuple[str, ...], page: int | None) -> list[Block]:
    parts = re.split(r"\n\s*\n", text.replace("\r\n", "\n"))
    return [
        Block(
            " ".join(_clean(line) for line in part.split("\n") if line.strip()), heading_path, page
        )
        for part in parts
        if part.strip()
    ]


def _parse_markdown(text: str) -> list[Block]:
    blocks: list[Block] = []
    path: tuple[str, ...] = ()
    levels: list[int] = []  # the Markdown level of each entry of ``path``
    buffer: list[str] = []
    fence: list[str] = []
    in_fence = False

    def flush() -> None:
        if buffer:
            blocks.extend(_paragraphs("\n".join(buffer), path, None))
            buffer.clear()

    def enter(level: int, title: str) -> None:
        nonlocal path
        keep = [i for i, lvl in enumerate(levels) if lvl < level]
        path = (*(path[i] for i in keep), title)
        levels[:] = [levels[i] for i in keep] + [level]

    lines = text.replace("\r\n", "\n").split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if _FENCE.match(line):
            if in_fence:
                # A code block stays one block with its line breaks.
                code = "\n".join([*fence, line])
                blocks.append(Block(code, path))
                fence.clear()
            else:
                flush()
            in_fence = not in_fence
            if in_fence:
                fence.append(line)
            continue
        if in_fence:
            fence.append(line)
            continue
        heading = _ATX_HEADING.match(line)
        following = lines[index] if index < len(lines) else ""
        if heading:
            flush()
            enter(len(heading.group(1)), _clean(heading.group(2)))
        elif line.strip() and not buffer and _SETEXT_UNDERLINE.match(following):
            flush()
            enter(1 if following.strip().startswith("=") else 2, _clean(line))
            index += 1  # the underline
        elif line.strip():
            buffer.append(line)
        else:
            flush()
    if fence:
        blocks.append(Block("\n".join(fence), path))
    flush()
    return blocks


def _parse_html(text: str) -> list[Block]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "nav", "header", "footer"]):
        tag.decompose()
    blocks: list[Block] = []
    path: tuple[str, ...] = ()
    levels: list[int] = []
    wanted = _HTML_HEADINGS + _HTML_BLOCKS
    for element in soup.find_all(wanted):
        if element.find_parent(_HTML_BLOCKS):
            continue  # its text is part of the enclosing block
        content = _clean(element.get_text(" "))
        if not content:
            continue
        if element.name in _HTML_HEADINGS:
            level = int(element.name[1])
            keep = [i for i, lvl in enumerate(levels) if lvl < level]
            path = (*(path[i] for i in keep), content)
            levels[:] = [levels[i] for i in keep] + [level]
        else:
            blocks.append(Block(content, path))
    if not blocks:
        # Pages of bare text in <div>s or <body>: fall back to the visible text.
        body = soup.body or soup
        blocks = _paragraphs(body.get_text("\n\n"), path, None)
    return blocks


def _parse_pdf(content: bytes) -> list[Block]:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(content), strict=False)
        if reader.is_encrypted:
            raise DocumentUnreadable("The PDF is encrypted; upload an unprotected copy.")
        blocks: list[Block] = []
        for number, page in enumerate(reader.pages, start=1):
            blocks.extend(_paragraphs(page.extract_text() or "", (), number))
    except DocumentUnreadable:
        raise
    # A corrupt file can surface as any of these from deep inside pypdf's object parser.
    except (
        PyPdfError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        OSError,
        RecursionError,
        zlib.error,
        struct.error,
    ) as exc:
        raise DocumentUnreadable(f"The PDF could not be read: {exc}") from exc
    return blocks
