"""Answer extraction and normalisation shared by every benchmark.

The rules (see R3V.md, "Answer extraction and matching"):

* the final answer is the text after the **last** answer marker: ``Answer:``, ``The answer
  is X`` or ``\\boxed{X}``; with no marker the whole reply is the candidate;
* numbers are read leniently in *form* ("1,234", "$5.50", "3/4", "-2", "50%", "five") but
  strictly in *content*: a candidate holding several unrelated numbers is unparseable;
* an unparseable answer is ``None`` and scores as wrong, always.
"""

from __future__ import annotations

import math
import re
import string
from fractions import Fraction

LETTERS = string.ascii_uppercase

# ------------------------------------------------------------ final answer
_MARKERS = re.compile(
    r"(?:\banswer\s*(?:is)?\s*[:：]|\bthe\s+(?:final\s+)?answer\s+is\b:?|\\boxed\{)",
    re.IGNORECASE,
)
_DECORATION = " \t\r\n*`\"'“”‘’"


def _boxed_content(text: str, start: int) -> str:
    """Content of a ``\\boxed{...}`` whose opening brace ends at ``start`` (nested braces ok)."""
    depth = 1
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start:i]
    return text[start:]


def final_answer_text(reply: str) -> str | None:
    """The candidate final answer of a reply, or None when the reply is empty.

    Takes the text after the last marker, up to the first line that has content
    (``"Answer:\\n5\\n\\nbecause..."`` gives ``"5"``)."""
    if not isinstance(reply, str):
        return None
    matches = list(_MARKERS.finditer(reply))
    if matches:
        last = matches[-1]
        if last.group(0).lower().startswith("\\boxed"):
            tail = _boxed_content(reply, last.end())
        else:
            tail = reply[last.end():]
            boxed = re.search(r"\\boxed\{", tail)
            if boxed:
                tail = _boxed_content(tail, boxed.end())
        lines = [ln.strip(_DECORATION) for ln in tail.splitlines()]
        lines = [ln for ln in lines if ln]
        if not lines:
            return None
        candidate = lines[0]
    else:
        candidate = reply.strip(_DECORATION)
    candidate = candidate.strip(_DECORATION)
    candidate = re.sub(r"[.。]+$", "", candidate).strip(_DECORATION)
    return candidate or None


#: a reply without an answer marker is taken as the answer itself only when it looks like one:
#: a single line of at most this many words
MAX_BARE_ANSWER_WORDS = 12


def answer_text_or_none(reply: str) -> str | None:
    """:func:`final_answer_text`, except that a reply with no answer marker counts only when it
    looks like a bare answer (one line, at most :data:`MAX_BARE_ANSWER_WORDS` words): a
    rationale that never states its answer, or is cut off before it ("Solution:\n1"), is
    unparseable, never read for a stray number."""
    if not isinstance(reply, str):
        return None
    if not has_answer_marker(reply):
        text = reply.strip()
        if "\n" in text or len(text.split()) > MAX_BARE_ANSWER_WORDS:
            return None
    return final_answer_text(reply)


def has_answer_marker(reply: str) -> bool:
    return bool(_MARKERS.search(reply or ""))


# ---------------------------------------------------------------- numbers
_NUMBER_WORDS = {
    w: i for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen "
        "fourteen fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
}
_NUM = r"[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+−]?\.\d+"
_FULL_NUMBER = re.compile(rf"^(?:{_NUM})$")
_FULL_FRACTION = re.compile(rf"^({_NUM})\s*/\s*({_NUM})$")
_NUM_TOKEN = re.compile(rf"(?<![\w.])(?:{_NUM})(?:\s*/\s*(?:{_NUM}))?(?![\w])")


def exact_number(token: str) -> int | float:
    """(Public: gold answers are read the same way.) A number token's value: an ``int`` (exact, every digit kept) when it is a whole number,
    else a float. A 61-digit answer must not come back as float's nearest value."""
    token = token.replace(",", "")
    return int(token) if re.fullmatch(r"[-+]?\d+", token) else float(token)


def _to_float(token: str) -> int | float | None:
    # commas only as thousands separators ("1,234"): "2,5" or "1,23" is not a number
    token = token.replace("−", "-")
    frac = _FULL_FRACTION.match(token)
    if frac:
        num, den = exact_number(frac.group(1)), exact_number(frac.group(2))
        if den == 0:
            return None
        if isinstance(num, int) and isinstance(den, int) and num % den == 0:
            return num // den
        return num / den
    if _FULL_NUMBER.match(token):
        try:
            return exact_number(token)
        except ValueError:
            return None
    return None


def _strip_number_decoration(text: str, unit: str | None = None) -> str:
    t = text.strip(_DECORATION).replace("\u00a0", " ")
    if unit:
        t = re.sub(re.escape(unit) + r"\b", "", t, flags=re.IGNORECASE).strip()
    t = re.sub(r"^[=≈~]\s*", "", t)
    t = re.sub(r"^(?:[$€£¥]|usd\s*)", "", t, flags=re.IGNORECASE).strip()
    t = re.sub(r"^([-+−])\s*[$€£¥]\s*", r"\1", t)
    t = re.sub(r"\s*%$", "", t)
    t = re.sub(r"[.,;:!]+$", "", t).strip()
    return t


def parse_number(text: str | None, unit: str | None = None) -> float | None:
    """Read one number from an answer candidate; None if there is none or it is ambiguous.

    Accepts thousands separators, currency signs, a trailing ``%``, fractions ``a/b``,
    a unit (given, or a trailing word such as "objects") and the number words zero..twenty.
    Several different numbers (``"3 + 2 = 5"`` keeps what follows the last ``=``) give None."""
    if text is None:
        return None
    t = _strip_number_decoration(text, unit)
    if not t:
        return None
    if "=" in t:
        return parse_number(t.rsplit("=", 1)[1], unit)
    value = _to_float(t)
    if value is not None:
        return value
    word = t.lower()
    if word in _NUMBER_WORDS:
        return float(_NUMBER_WORDS[word])
    tokens = _NUM_TOKEN.findall(t)
    if len(tokens) == 1:
        # one number with words around it ("5 objects", "about 12 cm"): only when no other
        # number-word could compete with it
        if not any(w in _NUMBER_WORDS for w in re.findall(r"[a-z]+", word)):
            return _to_float(tokens[0].replace(" ", "").lstrip("$"))
        return None
    if not tokens:
        # hyphenated words stay whole: "eighty-four" is not "four", "one-third" not "one"
        words = [w for w in re.findall(r"[a-z]+(?:-[a-z]+)*", word) if w in _NUMBER_WORDS]
        if len(words) == 1 and len(word.split()) <= 3:
            return float(_NUMBER_WORDS[words[0]])
    return None


def format_number(value: float, places: int = 3) -> str:
    """Canonical text of a number: integers without decimals (an ``int`` with every digit),
    others rounded to ``places``."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value) or math.isinf(value):
        return str(value)
    rounded = round(value, places)
    if rounded == int(rounded):
        return str(int(rounded))
    return f"{rounded:.{places}f}".rstrip("0").rstrip(".")


def relaxed_number_match(pred: float, gold: float, tolerance: float = 0.05) -> bool:
    """ChartQA's relaxed accuracy: within ``tolerance`` of the gold value (exact when gold is 0)."""
    if gold == 0:
        return abs(pred) < 1e-9
    return abs(pred - gold) <= tolerance * abs(gold) + 1e-12


def is_number(text: str | None) -> bool:
    return text is not None and _to_float(_strip_number_decoration(text)) is not None


def exact_fraction(text: str) -> Fraction | None:
    """The exact rational value of a plain number or fraction (for integer equality checks)."""
    t = _strip_number_decoration(text).replace(",", "").replace("−", "-")
    try:
        return Fraction(t.replace(" ", ""))
    except (ValueError, ZeroDivisionError):
        return None


# ------------------------------------------------------------------- text
def normalize_text(text: str | None) -> str:
    """Lower-case, trimmed, single-spaced, without a trailing period or decoration."""
    if text is None:
        return ""
    t = text.strip(_DECORATION).lower()
    t = re.sub(r"\s+", " ", t)
    t = re.sub(r"[.。]+$", "", t).strip(_DECORATION)
    return t


def yes_no(text: str | None) -> str | None:
    """'yes' / 'no' when the candidate is (or starts with) one of them."""
    t = normalize_text(text)
    m = re.match(r"^(yes|no)\b", t)
    return m.group(1) if m else None


# --------------------------------------------------------- multiple choice
def option_letters(n: int) -> str:
    return LETTERS[:n]


_NOT_ARTICLE_NEXT = {
    "is", "was", "seems", "looks", "appears", "would", "should", "must", "could", "can",
    "fits", "matches", "best", "correctly", "because", "since", "as",
}


def _is_article(text: str, pos: int) -> bool:
    """Whether the capital letter at ``pos`` is the article "A" / pronoun "I" opening a
    sentence ("A magnet attracts...", "I think...") rather than an option letter
    ("A is correct")."""
    if text[pos] not in "AI":
        return False
    if pos > 0 and not re.search(r"(?:^|[.!?:;\n])\s*$", text[:pos]):
        return False
    nxt = re.match(r"\s+([a-z]+)", text[pos + 1:])
    return bool(nxt) and nxt.group(1) not in _NOT_ARTICLE_NEXT


def parse_choice(text: str | None, choices: list[str]) -> str | None:
    """The option letter chosen by an answer candidate, or None.

    In order: the last "(X)" with a valid letter; else a candidate that is just a letter
    ("b", "B.", "Option B"); else the one option whose full text equals the candidate; else
    the last standalone valid capital letter ("B: 5 cm", "I think it is B"; a sentence-opening
    article "A ..." or pronoun "I ..." is not a letter); else the one option whose number
    equals the candidate's; else the only option whose text appears inside it."""
    if not text or not choices:
        return None
    valid = option_letters(len(choices))
    parens = [m for m in re.findall(r"\(([A-Za-z])\)", text) if m.upper() in valid]
    if parens:
        return parens[-1].upper()
    stripped = text.strip(_DECORATION)
    only_letter = re.fullmatch(r"(?:option\s+)?\(?([A-Za-z])\)?[.:)]?", stripped, re.IGNORECASE)
    if only_letter and only_letter.group(1).upper() in valid:
        return only_letter.group(1).upper()
    target = normalize_text(text)
    normalized = [normalize_text(c) for c in choices]
    exact = [i for i, c in enumerate(normalized) if c and c == target]
    if len(exact) == 1:  # the reply is one option's full text ("Vitamin C" is not option C)
        return valid[exact[0]]
    standalone = [
        m for m in re.finditer(r"(?<![A-Za-z0-9'])([A-Z])(?![A-Za-z0-9'])", stripped)
        if m.group(1) in valid and not _is_article(stripped, m.start())
    ]
    if standalone:
        return standalone[-1].group(1)
    target_num = parse_number(text)
    if target_num is not None:
        numeric = [i for i, c in enumerate(choices)
                   if (v := parse_number(c)) is not None and math.isclose(v, target_num,
                                                                          rel_tol=1e-6, abs_tol=1e-9)]
        if len(numeric) == 1:
            return valid[numeric[0]]
    inside = [i for i, c in enumerate(normalized)
              if c and re.search(r"(?<![a-z0-9])" + re.escape(c) + r"(?![a-z0-9])", target)]
    if len(inside) == 1:
        return valid[inside[0]]
    if len(inside) > 1:  # prefer the longest option text if it contains all the others
        longest = max(inside, key=lambda i: len(normalized[i]))
        if all(normalized[i] in normalized[longest] for i in inside):
            return valid[longest]
    return None


def letter_of(answer: str, choices: list[str], letter_first: bool = False) -> str | None:
    """The gold letter of a multiple-choice problem whose answer is an option's text or a letter.

    The option text is tried first, so with letter-valued options out of order (["B", "A"])
    the gold "A" names the option "A" (letter B). ``letter_first`` is for sources whose gold
    is a letter by definition (M3CoT, MMMU, a problem already mapped to its letter)."""
    a = answer.strip()
    valid = option_letters(len(choices))
    m = re.fullmatch(r"\(?([A-Za-z])\)?\.?", a)
    as_letter = m.group(1).upper() if m and m.group(1).upper() in valid else None
    if letter_first and as_letter:
        return as_letter
    normalized = [normalize_text(c) for c in choices]
    if normalize_text(a) in normalized:
        return valid[normalized.index(normalize_text(a))]
    return as_letter
