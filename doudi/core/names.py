"""Personal names as rosters and the enrolment register write them.

An agency's roster lists people by identity number and name; the bureau
compares each name with the one in its enrolment register and flags a
difference for a clerk to review, after normalising full-width characters,
spaces and traditional/simplified forms. Two names that differ only in those
ways are the same name; anything else differs.

:func:`normalise_name`, in this order:

1. NFKC: full-width Latin letters, digits and punctuation become ASCII
   (``Ｌｉ`` → ``Li``, ``．`` → ``.``), the ideographic and no-break spaces
   become U+0020, Kangxi radicals and CJK compatibility ideographs become the
   unified ideographs, and U+FF65 and U+0387 become U+30FB and U+00B7.
2. Every whitespace character (``str.isspace``) is removed, and so are the
   invisible U+00AD, U+200B-U+200D, U+2060 and U+FEFF that copied text carries.
3. Middle dots. The separator of transcribed minority and foreign names
   (买买提·艾力) is U+00B7, which GB 18030 and GBK decode its 间隔号 to. Its
   look-alikes, which mean nothing else in a name, become U+00B7 wherever
   they are: U+30FB katakana middle dot (what a GB 2312 decoder, Python's
   among them, gives for the same byte pair), U+2022 bullet and U+2027
   hyphenation point (Big5's dot as Python's ``big5`` and ``cp950`` decode
   it), U+2219 bullet operator, U+22C5 dot operator, U+2E31 word separator
   middle dot and U+A78F sinological dot. A full stop, ``.`` (also U+FF0E
   and U+2024 after NFKC) or ``。``, becomes U+00B7 only between two Han
   characters, as in 买买提.艾力: between Latin letters it abbreviates
   (``JOHN F.KENNEDY``) and is kept. No dot is added or dropped: 买买提艾力
   and 买买提·艾力 differ, and so do a dot and a mask such as ● or a hyphen.
4. Traditional to simplified with OpenCC's ``t2s``, except the characters that
   the 通用规范汉字表 (2013) keeps as standard in names although ``t2s`` folds
   them: 於 (a surname, not 于), 乾 (qián, not 干), 昇 and 陞 (not 升), 氾 (a
   surname, not 泛), 谿 (not 溪); 麴 and 鉅 become the names' 麹 and 钜 (not 曲
   and 巨); 薴 becomes 苎 directly (``t2s`` stops at 苧).
5. Upper case, for the Latin names of foreign nationals, then NFKC again if
   upper-casing left decomposed text.

The result is a key for comparison, never a name to store or show.
"""

from __future__ import annotations

import functools
import re
import unicodedata

import opencc

from doudi.core.errors import InvalidInput

_INVISIBLE = "\u00ad\u200b\u200c\u200d\u2060\ufeff"
_DOT_LOOK_ALIKES = "\u2022\u2027\u2219\u22c5\u2e31\u30fb\ua78f"
_DROP_AND_DOT = str.maketrans(
    {**dict.fromkeys(_INVISIBLE), **dict.fromkeys(_DOT_LOOK_ALIKES, "\u00b7")}
)
_ODD = re.compile(f"[{_INVISIBLE}{_DOT_LOOK_ALIKES}]")

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"
_STOP_BETWEEN_HAN = re.compile(f"(?<=[{_HAN}])[.。](?=[{_HAN}])")

# Characters ``t2s`` would fold into another standard character: what names keep instead.
_NAME_FORMS = {
    "於": "於",
    "乾": "乾",
    "昇": "昇",
    "陞": "陞",
    "氾": "氾",
    "谿": "谿",
    "麴": "麹",
    "鉅": "钜",
    "薴": "苎",
}
# Kept out of t2s: those characters, and lone surrogates (undecodable input), which it cannot take.
_NOT_CONVERTED = re.compile(f"([{''.join(_NAME_FORMS)}\ud800-\udfff])")


@functools.cache
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def _simplified(text: str) -> str:
    convert = _t2s().convert
    if not _NOT_CONVERTED.search(text):
        result: str = convert(text)
        return result
    # Even pieces lie between the characters kept out, which are the odd pieces.
    pieces = _NOT_CONVERTED.split(text)
    return "".join(
        _NAME_FORMS.get(piece, piece) if i % 2 else convert(piece) if piece else ""
        for i, piece in enumerate(pieces)
    )


def normalise_name(name: str) -> str:
    """The comparison key of a name: two names are the same name when their keys are equal."""
    if name.isascii():
        return "".join(name.split()).upper()
    text = name if unicodedata.is_normalized("NFKC", name) else unicodedata.normalize("NFKC", name)
    text = "".join(text.split())
    if _ODD.search(text):  # rare: a search is cheaper than the translation
        text = text.translate(_DROP_AND_DOT)
    if "." in text or "。" in text:
        text = _STOP_BETWEEN_HAN.sub("\u00b7", text)
    text = _simplified(text).upper()
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    return text


def same_name(a: str, b: str) -> bool:
    """Whether a roster name and a register name are the same name (see :func:`normalise_name`)."""
    return a == b or normalise_name(a) == normalise_name(b)


HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
"""Unicode categories of characters that show nothing or control the text (controls,
formats such as U+200B and U+FEFF, surrogates, line and paragraph separators): no name,
household number or reference holds one. Private-use characters (rare name characters
some GB18030 systems still map there) and characters newer than this Python's Unicode
tables (unassigned to it) are kept."""


def visible(text: str) -> str:
    """``text`` without its characters of :data:`HIDDEN_CATEGORIES`."""
    if text.isprintable():
        return text
    return "".join(c for c in text if unicodedata.category(c) not in HIDDEN_CATEGORIES)


def hidden_character(text: str) -> str | None:
    """The first character of ``text`` in :data:`HIDDEN_CATEGORIES`, or None."""
    if text.isprintable():  # the usual case, in C; spaces other than U+0020 are not printable
        return None
    return next((c for c in text if unicodedata.category(c) in HIDDEN_CATEGORIES), None)


def check_visible(text: str, field: str) -> None:
    """InvalidInput on ``field`` when ``text`` holds a hidden character (named by code)."""
    hidden = hidden_character(text)
    if hidden is not None:
        raise InvalidInput(
            field,
            f"holds an invisible or control character (U+{ord(hidden):04X}); remove it",
        )
