"""Heuristics for inputs that try to override the instructions (prompt injection).

Text is normalised first (NFKC, zero-width characters removed, whitespace folded, lower case) so
look-alike characters and spacing tricks do not hide a phrase. Each rule has a weight; a score of
1.0 or more is "suspected". The rules aim at phrasing that ordinary customer text does not use.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from dataclasses import dataclass, field

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))

_RULES: list[tuple[str, float, re.Pattern]] = [
    (
        "override_instructions",
        1.0,
        re.compile(
            r"\b(ignore|disregard|forget|override|bypass)\b[^.\n]{0,40}\b(previous|prior|above|earlier|"
            r"all|any|your|the|system)\b[^.\n]{0,20}\b(instructions?|prompts?|rules?|directions?|"
            r"guidelines?|messages?)"
        ),
    ),
    (
        "new_instructions",
        0.6,
        re.compile(
            r"\b(new|updated|real|actual)\s+(instructions?|rules|system prompt)\s*(:|are|follow)"
        ),
    ),
    (
        "reveal_prompt",
        1.0,
        re.compile(
            r"\b(reveal|show|print|repeat|output|leak|tell me)\b[^.\n]{0,30}\b(system prompt|"
            r"your (hidden |initial |original |secret )?(instructions|prompt|rules)|"
            r"(the )?(hidden|initial|original|secret) (instructions|prompt))"
        ),
    ),
    (
        "role_hijack",
        0.8,
        re.compile(
            r"\byou are (now|no longer)\b|\bfrom now on,? you\b|\bact as (an? )?(unrestricted|"
            r"unfiltered|jailbroken)|\b(dan|developer) mode\b|\bdo anything now\b"
        ),
    ),
    (
        "fake_delimiter",
        0.8,
        re.compile(
            r"</?\s*(system|user_input|assistant|instructions?)\s*>|^\s*#{2,}\s*(system|assistant)\b|"
            r"\[/?(system|inst)\]|<\|im_(start|end)\|>",
            re.MULTILINE,
        ),
    ),
    (
        "policy_evasion",
        0.5,
        re.compile(r"\b(without|no) (any )?(restrictions|filters|censorship|safety)\b"),
    ),
]
_BASE64_BLOB = re.compile(r"[A-Za-z0-9+/]{40,}={0,2}")
_DECODE_ASK = re.compile(r"\b(decode|base64|execute|run)\b")


@dataclass
class InjectionVerdict:
    suspected: bool
    score: float
    reasons: list[str] = field(default_factory=list)


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_ZERO_WIDTH)
    return re.sub(r"[ \t]+", " ", text).lower()


def _has_hidden_instructions(text: str) -> bool:
    for blob in _BASE64_BLOB.findall(text):
        try:
            decoded = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=False)
            plain = decoded.decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            continue
        if any(rule.search(normalise(plain)) for _, _, rule in _RULES):
            return True
    return False


def detect_injection(text: str) -> InjectionVerdict:
    if not text:
        return InjectionVerdict(False, 0.0)
    clean = normalise(text)
    score, reasons = 0.0, []
    for name, weight, rule in _RULES:
        if rule.search(clean):
            score += weight
            reasons.append(name)
    if _DECODE_ASK.search(clean) and _has_hidden_instructions(text):
        score += 1.0
        reasons.append("encoded_instructions")
    return InjectionVerdict(score >= 1.0, round(score, 2), reasons)


DELIMITER_OPEN, DELIMITER_CLOSE = "<user_input>", "</user_input>"


def wrap_user_input(text: str) -> str:
    """Delimit user input for the user role; delimiter look-alikes inside it are neutralised."""
    neutral = re.sub(
        r"<\s*/?\s*user_input\s*>", "[user_input tag removed]", text, flags=re.IGNORECASE
    )
    return f"{DELIMITER_OPEN}\n{neutral}\n{DELIMITER_CLOSE}"
