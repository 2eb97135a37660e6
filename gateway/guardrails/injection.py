"""Heuristics for user input that tries to override the instructions (prompt injection), and
the delimiters that keep user input recognisable as such.

Text is normalised before matching (NFKC, invisible format characters removed, Unicode "tag"
characters decoded to the ASCII they smuggle, common Cyrillic/Greek look-alikes mapped to Latin,
spaces folded, case folded), so spacing and look-alike tricks do not hide a phrase. Each rule has a
weight and the score is the sum of the weights of the rules that match; ``suspected`` means a
score of at least ``SUSPECT_THRESHOLD``. Rules aim at phrasing ordinary customer text does not
use; words that customers do use ("system", "instructions", "you are now") only count with the
company an attack keeps, or weigh too little to be suspected alone.

This is a heuristic screen, not a boundary: the boundary is that user input only ever goes into
the user role, inside ``wrap_user_input``'s delimiters.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from dataclasses import dataclass, field

SUSPECT_THRESHOLD = 1.0


def _format_characters() -> dict[int, None]:
    # Invisible "Cf" characters (zero-width space/joiners, bidi controls, soft hyphen, BOM…) are
    # how a phrase is split so that it still reads the same but no longer matches.
    candidates = [*range(0x0000, 0x3000), *range(0xFE00, 0x10000), *range(0x1BCA0, 0x1BCA4)]
    table: dict[int, None] = {
        cp: None for cp in candidates if unicodedata.category(chr(cp)) == "Cf"
    }
    table.update(dict.fromkeys((0xE0001, 0xE007F)))
    return table


_INVISIBLE = _format_characters()
# Unicode tag characters mirror ASCII and render as nothing: "ASCII smuggling" hides a whole
# instruction in them, so they are decoded rather than dropped.
_TAG_TO_ASCII = {cp: cp - 0xE0000 for cp in range(0xE0020, 0xE007F)}
_LOOKALIKES = str.maketrans(
    "аеорсухіѕјԁɡοαειкνρτυχ",  # Cyrillic and Greek letters that look Latin
    "aeopcyxisjdgoaeikvptux",
)
_UNHIDE = {**_INVISIBLE, **_TAG_TO_ASCII}

_VERB_OVERRIDE = r"(?:ignore|disregard|forget|override|bypass|skip|drop)"
# Anything but the speaker's own possessive: "disregard my previous instructions about the
# delivery address" is a customer correcting themselves, not an attack.
_NOT_OWN = r"(?:(?!\b(?:my|our)\b)[^.]){0,50}?"
_ANY_TARGET = (
    r"(?:previous|prior|above|earlier|preceding|foregoing|all|any|your|the|these|those|system|"
    r"original|initial|developer|safety)"
)
_AI_NOUN = r"(?:instructions?|prompts?|directives?|guidelines|guardrails|programming)"
# Businesses have approval rules and refund policies; only "your/previous/system … rules" is
# about the model's.
_STRONG_TARGET = (
    r"(?:previous|prior|above|earlier|preceding|foregoing|your|system|original|initial|"
    r"developer|safety)"
)
_BUSINESS_NOUN = r"(?:rules|constraints|policies|restrictions)"


@dataclass(frozen=True)
class _Rule:
    name: str
    weight: float
    pattern: re.Pattern[str]


_RULES = [
    _Rule(
        "override_instructions",
        1.0,
        re.compile(
            rf"\b{_VERB_OVERRIDE}\b{_NOT_OWN}\b{_ANY_TARGET}\b{_NOT_OWN}\b{_AI_NOUN}\b|"
            rf"\b{_VERB_OVERRIDE}\b{_NOT_OWN}\b{_STRONG_TARGET}\b{_NOT_OWN}\b{_BUSINESS_NOUN}\b"
        ),
    ),
    _Rule(
        # Also how a customer retracts their own earlier message, so it only adds to others.
        "ignore_the_above",
        0.6,
        re.compile(
            r"\b(?:ignore|disregard|forget)\b (?:all |everything |anything )?(?:of )?"
            r"(?:the |what(?:'s| is| was) )?(?:above|before this|written above|said above)\b"
        ),
    ),
    _Rule(
        "reveal_prompt",
        1.0,
        re.compile(
            r"\b(?:reveal|show|print|repeat|output|leak|dump|display|tell me|give me|what (?:is|are|"
            r"was|were))\b[^.\n]{0,40}?\b(?:(?:the |your )?system (?:prompt|message)|"
            r"your (?:(?:hidden|initial|original|secret|full|exact|system|previous) )?"
            r"(?:instructions|prompt)\b(?! (?:for|on|about|to|regarding))|"
            r"(?:the )?(?:hidden|initial|original|secret) (?:instructions|prompt)|"
            r"(?:everything|the text|all text|the words) (?:above|before this))"
        ),
    ),
    _Rule(
        "mentions_system_prompt",
        0.5,
        re.compile(r"\bsystem (?:prompt|message|instructions)\b|\bpre-?prompt\b"),
    ),
    _Rule(
        "role_hijack",
        1.0,
        re.compile(
            r"\byou are (?:now|no longer) (?:an? |my |the |called |named |known as |in )?"
            r"(?:dan\b|free|unrestricted|unfiltered|uncensored|jailbroken|evil|bound|restricted|"
            r"limited|required|an ai|a (?:language model|chatbot|assistant)|(?:dan|developer|god) "
            r"mode)|\b(?:dan|god|jailbreak) mode\b|\bdo anything now\b"
        ),
    ),
    _Rule(
        # Too common in complaints ("you are now charging me twice") to count for much alone.
        "you_are_now",
        0.5,
        re.compile(r"\byou are now\b|\bfrom now on,? (?:you|act|respond|answer|reply)\b"),
    ),
    _Rule(
        "role_play",
        0.6,
        re.compile(
            r"\b(?:pretend|imagine) (?:to be|you are|you're|that you)\b|\brole-?play\b|"
            r"\bstay in character\b|\blet'?s play a game\b|\byou will act as\b|"
            r"\bact as (?:an? )?(?:unrestricted|unfiltered|uncensored|jailbroken|evil|rogue)\b|"
            r"\bhypothetically,? (?:if )?you (?:had|have) no (?:rules|restrictions)"
        ),
    ),
    _Rule(
        "new_instructions",
        0.6,
        re.compile(
            r"\b(?:new|updated|real|actual|revised|true) (?:instructions?|rules|system prompt|task)"
            r"\s*(?::|are\b|is\b|follow)|\byour (?:new|real|actual|true) (?:task|goal|purpose|role)\b"
        ),
    ),
    _Rule(
        # Our own delimiter: ordinary users never type it, so it can only be an escape attempt.
        "delimiter_escape",
        1.0,
        re.compile(r"<\s*/?\s*user_input\s*>"),
    ),
    _Rule(
        # Chat-template control tokens have no business in a customer's text.
        "chat_template_token",
        1.0,
        re.compile(
            r"<\|(?:im_start|im_end|system|user|assistant|endoftext)\|>|\[/?inst\]|<</?sys>>"
        ),
    ),
    _Rule(
        "fake_role_tag",
        0.8,
        re.compile(
            r"</?\s*(?:system|user|assistant|developer|instructions?)\s*>|"
            r"(?:^|\s)#{2,}\s*(?:system|assistant|developer|instructions?)\b|\[/?system\]"
        ),
    ),
    _Rule(
        # Closing the user's turn and opening another role's is the shape of the attack; a pasted
        # XML payload with a <user> element is not.
        "role_switch",
        0.4,
        re.compile(
            r"</\s*(?:user|user_input|human)\s*>.{0,200}?<\s*(?:system|assistant|developer)\s*>",
            re.DOTALL,
        ),
    ),
    _Rule(
        # "System: macOS 14" is a normal bug report line; it only adds to other signals.
        "fake_role_prefix",
        0.4,
        re.compile(r"^\s*(?:system|assistant|developer)\s*:", re.MULTILINE),
    ),
    _Rule(
        "policy_evasion",
        0.5,
        re.compile(
            r"\b(?:without|no|ignoring) (?:any )?(?:restrictions|filters|filtering|censorship|"
            r"safety (?:rules|guidelines|filters)|ethical (?:guidelines|constraints)|limitations)\b"
        ),
    ),
]
_BASE64_BLOB = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{32,}={0,2}")
_DECODE_ASK = re.compile(
    r"\b(?:decode|base64|b64|deobfuscate)\b[^.\n]{0,60}?\b(?:follow|execute|obey|do|run|apply)\b|"
    r"\b(?:follow|execute|obey|run)\b[^.\n]{0,40}?\b(?:decoded|encoded|base64)\b"
)
_TAG_CHARACTER = re.compile("[\U000e0020-\U000e007e]")
# A few tag characters are legitimate: subdivision flags such as England's are built from them.
_MANY_TAG_CHARACTERS = 8


@dataclass(frozen=True)
class InjectionVerdict:
    """``score`` is the sum of the matching rules' weights; ``reasons`` names those rules."""

    suspected: bool
    score: float
    reasons: list[str] = field(default_factory=list)


def normalise(text: str) -> str:
    """The text as the rules see it: NFKC, invisible characters out, look-alikes mapped,
    runs of spaces and tabs folded to one space, case folded."""
    text = unicodedata.normalize("NFKC", text).translate(_UNHIDE).casefold().translate(_LOOKALIKES)
    return re.sub(r"[^\S\n]+", " ", text)


def _decoded_blobs(text: str) -> list[str]:
    decoded = []
    for blob in _BASE64_BLOB.findall(text):
        try:
            raw = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)
            decoded.append(raw.decode("utf-8"))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            continue
    return decoded


def _matching_rules(clean: str) -> list[_Rule]:
    return [rule for rule in _RULES if rule.pattern.search(clean)]


def detect_injection(text: str) -> InjectionVerdict:
    """Whether user input looks like an attempt to override the instructions, and why."""
    if not text or not text.strip():
        return InjectionVerdict(False, 0.0, [])
    clean = normalise(text)
    matched = _matching_rules(clean)
    score = sum(rule.weight for rule in matched)
    reasons = [rule.name for rule in matched]
    if len(_TAG_CHARACTER.findall(text)) >= _MANY_TAG_CHARACTERS:
        score += 0.6
        reasons.append("hidden_tag_characters")
    blobs = _decoded_blobs(text)
    hidden = [r for blob in blobs for r in _matching_rules(normalise(blob))]
    if hidden:
        score += 1.0
        reasons.append("encoded_instructions")
    elif blobs and _DECODE_ASK.search(clean):
        score += 0.6
        reasons.append("decode_and_follow")
    return InjectionVerdict(score >= SUSPECT_THRESHOLD, round(float(score), 2), reasons)


DELIMITER_OPEN, DELIMITER_CLOSE = "<user_input>", "</user_input>"
_DELIMITER_NAME = "user_input"
# Anything between brackets (ASCII, full-width or small forms) short enough to be a tag; whether it
# *is* our tag is decided on its normalised form, so zero-width and full-width tricks count too.
_TAG_CANDIDATE = re.compile(r"[<\uff1c\ufe64][^<>\uff1c\uff1e\ufe64\ufe65]{0,60}[>\uff1e\ufe65]")
_NEUTRALISED = "[user_input tag removed]"


def _is_delimiter(candidate: str) -> bool:
    inner = re.sub(r"\s+", "", normalise(candidate))[1:-1].lstrip("/")
    return inner == _DELIMITER_NAME


def wrap_user_input(text: str) -> str:
    """User input delimited for the user role: ``<user_input>`` … ``</user_input>``.

    Anything inside the text that reads as either delimiter (in any case, spacing, full-width
    brackets or with invisible characters) is replaced, so the input cannot close the block early.
    """
    neutral = _TAG_CANDIDATE.sub(
        lambda m: _NEUTRALISED if _is_delimiter(m.group(0)) else m.group(0), text
    )
    return f"{DELIMITER_OPEN}\n{neutral}\n{DELIMITER_CLOSE}"
