"""The prompt-injection heuristic of `policies.safety.block_prompt_injection`: does a text
look like an attempt to override the agent's instructions?

A heuristic, never a guarantee: it looks for the common phrasings of an override ("ignore
all previous instructions", "reveal your system prompt", chat-template markers, jailbreak
names) and misses paraphrases. The text is normalised first so that the usual disguises
of those phrasings do not hide them:

1. Unicode NFKC (full-width and other compatibility letters become plain ones), format
   characters removed (zero-width spaces and joiners, soft hyphens, bidi controls), a few
   Cyrillic and Greek letters that look Latin mapped to Latin, case folded;
2. for the phrase patterns, every run of separators (spaces, punctuation, hyphens,
   underscores) collapsed into one space: `ignore-previous_instructions`;
3. for the most common phrasings, letters only, digits read as letters
   (`i.g.n.o.r.e  pr3vious`): `ignorepreviousinstructions`.

Each pattern needs several words in a row that ordinary text does not put together, so
that headings ("## System overview"), "My operating system: Ubuntu" or "You are now a
member" pass. `tests/test_injection.py` keeps the corpus the rates in docs/security.md
are measured on.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["looks_like_injection", "normalise"]

# Letters of other scripts that render like Latin ones (the usual homoglyph disguise).
_LOOKALIKES = str.maketrans(
    # Cyrillic a e o p c y x i j s d h q w, dotless i, Greek a e o p i k v t
    "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0458\u0455\u0501\u04bb\u051b\u051d"
    "\u0131\u03b1\u03b5\u03bf\u03c1\u03b9\u03ba\u03bd\u03c4",
    "aeopcyxijsdhqwiaeopikvt",
)
_DIGITS_AS_LETTERS = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
)
_SEPARATORS = re.compile(r"[\W_]+")
_NOT_LETTERS = re.compile(r"[^a-z]+")


def normalise(text: str) -> str:
    """Step 1: NFKC, format characters removed, look-alike letters mapped, case folded."""
    text = unicodedata.normalize("NFKC", text)
    if not text.isascii():
        text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
        text = text.translate(_LOOKALIKES)
    return text.casefold()


_OVERRIDE = (
    r"\b(?:ignore|disregard|forget|override|bypass|skip|neglect|abandon|drop|discard)\s+(?!my\b)"
)
_FILLER = r"(?:(?:all|any|of|the|these|those|your|its|and|or|my|prior|previous|above)\s+)"
# "previous", "above": whatever they qualify is what came before, the agent's orders
_BEFORE = r"(?:previous|prior|above|earlier|preceding|foregoing|former|original|initial)"
_ORDERS = r"(?:instructions?|prompts?|rules|directives?|guidelines|guidance|programming|safeguards)"
# "all", "your": only with the words for an agent's instructions ("forget all the rules of
# chess" passes)
_ANY = r"(?:all|any|every|your)"
_INSTRUCTIONS = r"(?:instructions?|prompts?|directives?|guidelines|programming|safeguards)"

# On the text with separators collapsed into single spaces (step 2).
_PHRASES = re.compile(
    "|".join(
        [
            # instruction override: "ignore all previous instructions", "disregard the above rules"
            rf"{_OVERRIDE}{_FILLER}{{0,3}}{_BEFORE}\s+{_FILLER}{{0,2}}{_ORDERS}\b",
            rf"{_OVERRIDE}{_FILLER}{{0,3}}{_ANY}\s+{_FILLER}{{0,2}}{_INSTRUCTIONS}\b",
            rf"{_OVERRIDE}{_FILLER}{{0,3}}(?:system|developer|hidden)\s+(?:prompt|message|"
            r"instructions)\b",
            r"\b(?:ignore|disregard|forget)\s+(?:everything|all|anything)\s+(?:you\s+were|"
            r"you\s+have\s+been|i|we)\s+(?:told|said|instructed|given)\b",
            # role reassignment to an unrestricted persona
            r"\byou\s+are\s+(?:now|no\s+longer)\s+(?:an?\s+|in\s+)?(?:dan|unrestricted|"
            r"unfiltered|uncensored|jailbroken|evil|free\s+(?:of|from)|bound\s+by|"
            r"developer\s+mode|god\s+mode|jailbreak\s+mode|restricted|limited\s+by)\b",
            r"\b(?:act|behave|respond|pretend|roleplay)\s+(?:as|like|to\s+be)\s+(?:an?\s+)?"
            r"(?:dan|unrestricted|unfiltered|uncensored|jailbroken|evil)\s+"
            r"(?:ai|assistant|model|chatbot|version|bot|llm)\b",
            r"\byou\s+(?:have|has)\s+no\s+(?:more\s+)?(?:restrictions|rules|limitations|filters|"
            r"guidelines|content\s+polic(?:y|ies)|ethical\s+guidelines)\s+(?:anymore|any\s+more|"
            r"any\s+longer|now|whatsoever)\b",
            r"\bpretend\s+(?:that\s+)?(?:you\s+(?:have|are)|there\s+are)\s+no\s+"
            r"(?:restrictions|rules|limitations|filters|guidelines)\b",
            # system-prompt extraction
            r"\b(?:reveal|show|print|repeat|output|display|leak|dump|disclose|recite|"
            r"tell\s+me|give\s+me|write\s+out|spell\s+out)\s+(?:me\s+)?(?:\w+\s+){0,2}"
            r"(?:your|the)\s+(?:\w+\s+)?(?:system\s+prompt|system\s+message|"
            r"(?:initial|hidden|original|secret|internal|developer)\s+(?:instructions|prompt)|"
            r"developer\s+message|pre\s+prompt)\b",
            r"\bwhat\s+(?:is|was|are|were)\s+your\s+(?:system\s+prompt|initial\s+instructions|"
            r"hidden\s+instructions|original\s+instructions)\b",
            # jailbreak names
            r"\bdo\s+anything\s+now\b",
            r"\b(?:dan|jailbreak|god)\s+mode\s+(?:enabled|activated|on)\b",
            r"\b(?:enable|activate|enter|switch\s+to)\s+(?:dan|jailbreak|god)\s+mode\b",
            # instructions in other languages: ignore the previous instructions
            r"\bignore[zr]?\s+(?:toutes\s+)?(?:les|vos)\s+instructions\s+"
            r"(?:précédentes|precedentes|antérieures|anterieures)\b",
            r"\bignora\s+(?:todas\s+)?las\s+instrucciones\s+(?:anteriores|previas)\b",
            r"\bignorier(?:e|en)?\s+(?:alle\s+)?(?:vorherigen|bisherigen|obigen)\s+"
            r"(?:anweisungen|instruktionen)\b",
        ]
    )
)

# On the text of step 1, where line starts and brackets still are.
_MARKERS = re.compile(
    "|".join(
        [
            r"<\|\s*(?:im_start|im_end|system|user|assistant|endoftext|begin_of_text|"
            r"start_header_id|end_header_id|eot_id)\s*\|>",  # chat-template tokens
            r"\[/?inst\]|<</?sys>>",  # Llama chat template
            # a fake role turn that gives orders: "SYSTEM: you are ...", "### system prompt: ignore"
            r"(?:^|\n)\s*(?:#{1,6}\s*)?(?:\[|<)?(?:system|developer)(?:\s+(?:prompt|message|"
            r"override|instructions?))?(?:\]|>)?\s*:\s*(?:you\b|ignore|disregard|forget|"
            r"override|from\s+now|new\s+instructions|the\s+assistant\s+(?:must|will|should))",
        ]
    )
)

# On the letters alone (step 3): the most common phrasings, however spelled out.
_SPELLED = re.compile(
    r"(?:ignore|disregard|forget)(?:all|any)?(?:the|your)?(?:previous|prior|above)"
    r"(?:instructions|instruction|prompts|prompt|rules)"
    r"|(?:reveal|show|print|repeat)(?:me)?(?:your|the)(?:systemprompt|initialinstructions)"
    r"|doanythingnow"
)


def looks_like_injection(text: str) -> bool:
    """Whether `text` reads like a prompt injection (a heuristic: see the module)."""
    plain = normalise(text)
    if _MARKERS.search(plain):
        return True
    spaced = _SEPARATORS.sub(" ", plain)
    if _PHRASES.search(spaced):
        return True
    letters = _NOT_LETTERS.sub("", plain.translate(_DIGITS_AS_LETTERS))
    return _SPELLED.search(letters) is not None
