"""Names that identify people: one normaliser, so that look-alikes are one person everywhere.

``display_name(raw)`` is what is recorded and shown: Unicode NFKC (full-width letters become
ASCII), invisible characters removed (zero-width space and joiners, the byte-order mark, bidi
controls: every character of category Cf), runs of white space made one space, trimmed. It
refuses an empty name, control characters and names longer than ``MAX_NAME`` characters.

``person_key(name)`` is what is compared (separation of duties, one person per role): the display
name, decomposed with its combining marks dropped (``ALİCE`` -> ``ALICE``), case-folded, then
mapped through a table of characters that look like Latin letters (after Unicode's confusables
data, UTS #39: Cyrillic ``а`` -> ``a``, Greek ``ο`` -> ``o``, dotless ``ı`` -> ``i``, ...), with
``l``, ``1`` and ``|`` folded into ``i`` and ``0`` into ``o``, because a reader cannot tell them
apart in many fonts. Two names with the same key are the same person for every rule; the key
is never shown.

Example: ``'alice '``, ``' alice'``, ``'ａｌｉｃｅ'``, ``'аlice'`` (Cyrillic a), ``'alice\\u200b'``,
``'ALİCE'``, ``'alıce'`` and ``'aIice'`` all have the key ``'aiice'``.
"""

from __future__ import annotations

import re
import unicodedata

from rollout.errors import InputError

MAX_NAME = 128

# Characters that render like a Latin letter, after case-folding (UTS #39 confusables, the subset
# that maps onto a-z, 0-9): Cyrillic, Greek, Armenian and a few Latin ones.
_CONFUSABLES = {
    # Cyrillic
    "а": "a", "в": "b", "с": "c", "ԁ": "d", "е": "e", "ё": "e", "һ": "h", "і": "i", "ї": "i", "ј": "j",
    "к": "k", "ӏ": "i", "м": "m", "н": "h", "о": "o", "р": "p", "ԛ": "q", "г": "r", "ѕ": "s", "т": "t",
    "ц": "u", "ѵ": "v", "ԝ": "w", "х": "x", "у": "y", "з": "3", "ь": "b", "п": "n",
    # Greek
    "α": "a", "β": "b", "ϲ": "c", "ε": "e", "η": "n", "ι": "i", "κ": "k", "μ": "u", "ν": "v", "ο": "o",
    "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "γ": "y", "ω": "w", "ς": "c", "σ": "o",
    # Armenian
    "օ": "o", "ս": "u", "հ": "h", "ո": "n", "զ": "q",
    # Latin and symbols that read as another letter
    "ı": "i", "ȷ": "j", "ſ": "f", "ɑ": "a", "ɡ": "g", "ɩ": "i", "ʟ": "i", "ᴄ": "c", "ᴏ": "o", "ᴠ": "v",
    "ᴡ": "w", "ᴢ": "z", "ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "đ": "d", "ħ": "h", "ł": "i",
    # the i/l/1/| and o/0 classes
    "l": "i", "1": "i", "|": "i", "!": "i", "0": "o",
}
_FOLD = str.maketrans(_CONFUSABLES)
_SPACES = re.compile(r"\s+")


def display_name(raw: str, *, what: str = "name") -> str:
    """The name as recorded (see the module docstring); raises InputError for one that cannot be."""
    text = unicodedata.normalize("NFKC", raw)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    text = _SPACES.sub(" ", text).strip()
    if not text:
        raise InputError(f"{what}: empty (or only spaces and invisible characters); give the person's name.")
    bad = next((ch for ch in text if unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn")), None)
    if bad is not None:
        raise InputError(f"{what}: contains the control or unassigned character U+{ord(bad):04X}; "
                         "give the name as plain text.")
    if len(text) > MAX_NAME:
        raise InputError(f"{what}: {len(text)} characters, more than {MAX_NAME}; give a shorter name.")
    return text


def person_key(name: str) -> str:
    """What two names are compared by (see the module docstring). Accepts recorded and raw names."""
    text = unicodedata.normalize("NFKC", name)
    text = "".join(ch for ch in unicodedata.normalize("NFD", text)
                   if unicodedata.category(ch) not in ("Cf", "Mn", "Me"))
    text = _SPACES.sub(" ", text).strip().casefold()
    return unicodedata.normalize("NFC", text).translate(_FOLD)


def same_person(a: str, b: str) -> bool:
    return person_key(a) == person_key(b)
