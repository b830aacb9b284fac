"""Text decoding: BOM, UTF-8, then a Western-European-aware guess; binary content is refused."""

import codecs
import re
from collections import Counter

from .base import LoadError

BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

# Non-ASCII characters of Western European text as decoded by cp1252. Text whose high bytes all
# decode to these (and that is mostly ASCII) is taken as cp1252: on short texts charset
# detectors often pick an exotic code page instead (e.g. "café" -> cp1006).
WESTERN = set(
    "àáâãäåæçèéêëìíîïñòóôõöøùúûüÿÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÑÒÓÔÕÖØÙÚÛÜßœŒšŠžŽŸ"
    "€£¥¢©®°±²³·½¼¾«»¡¿‘’‚“”„–—…•™×÷§¶µ\xa0¨´¸ªº¬¯†‡‰ƒˆ˜‹›"
)
SAMPLE = 256 * 1024
WESTERN_CODECS = ("cp1252", "iso8859_15")
CENTRAL_LANGUAGES = {"Czech", "Slovak", "Polish", "Hungarian", "Slovene"}
TELLTALES = set("ìøùõûòïÌØÙÕÛÒÏ")  # ě ř ů ő ű ň ď read as cp1252
C1 = re.compile(rb"[\x80-\x9f]")  # cp1250 letters such as "š" and "ś"; unused in ISO-8859-2 text
# C0/C1 control characters except tab, newlines, vertical tab, form feed and escape.
CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f-\x9f]")
NOT_ASCII_LETTER = re.compile("[^A-Za-z]+")
HIGH = re.compile(r"[^\x00-\x7f]")


def decode(data: bytes, declared: str | None = None) -> tuple[str, str]:
    """Returns (text, encoding name) with newlines normalized to "\\n".

    Order: byte-order mark, BOM-less UTF-16, UTF-8, a declared encoding (HTML <meta charset>),
    then a guess (see `detect`). Raises LoadError "binary content" (NUL bytes, control
    characters) or "undecodable text".
    """
    text, encoding = guess(data, declared)
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").rstrip("\x1a")
    if binary(text):
        raise LoadError("binary content")
    return text, encoding


def guess(data: bytes, declared: str | None) -> tuple[str, str]:
    for bom, encoding in BOMS:
        if data.startswith(bom):
            return strict(data[len(bom) :], encoding) if encoding != "utf-8-sig" else strict(data, encoding), encoding

    if b"\x00" in data:
        encoding = utf16(data)
        if not encoding:
            raise LoadError("binary content")
        return strict(data, encoding), encoding

    # valid UTF-8 wins over a declaration: pages re-saved as UTF-8 often keep an old <meta charset>
    for encoding in filter(None, ("utf-8", declared)):
        try:
            return data.decode(encoding), encoding
        except (UnicodeDecodeError, LookupError):
            pass

    return detect(data)


def strict(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        raise LoadError("undecodable text") from None


def utf16(data: bytes) -> str | None:
    """BOM-less UTF-16: mostly-ASCII text has a NUL in every other byte, all on one side."""
    if len(data) % 2:
        return None
    even, odd = data[0::2].count(0), data[1::2].count(0)
    high, low = max(even, odd), min(even, odd)
    if high < 0.3 * (len(data) // 2) or low > 0.05 * high:
        return None
    return "utf-16-le" if odd > even else "utf-16-be"


def detect(data: bytes) -> tuple[str, str]:
    """A legacy 8-bit or CJK encoding.

    Text that reads as Western European in cp1252 (or ISO-8859-15) -> that, unless it looks
    like Czech/Hungarian/... read in the wrong code page -> cp1250 or ISO-8859-2; else
    charset-normalizer's best match (unreliable on short Western texts: "café" -> cp1006).
    """
    from charset_normalizer import from_bytes

    # charset-normalizer decodes its input once per candidate: a sample keeps big files fast
    matches = [m for m in from_bytes(data[:SAMPLE]) if not m.encoding.startswith(("utf_16", "utf_32"))]
    candidates = [*WESTERN_CODECS, *(m.encoding for m in matches)]
    if central(data, matches):
        candidates.insert(0, "cp1250" if C1.search(data) else "iso8859_2")
    for encoding in candidates:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if encoding not in WESTERN_CODECS or western(text):
            return text, encoding
    raise LoadError("undecodable text")


def central(data: bytes, matches) -> bool:
    """Central European text: most equally good matches read a Central European language, and
    the cp1252 reading has letters typical of that mistake (Czech "ě" read as "ì")."""
    best = [m.language for m in matches if m.chaos <= matches[0].chaos] if matches else []
    if not best or Counter(best).most_common(1)[0][0] not in CENTRAL_LANGUAGES:
        return False
    text = data.decode("cp1252", errors="replace")
    return any(char in TELLTALES for char in text) or not western(text)


def western(text: str) -> bool:
    """True when text reads as Western European: known accented letters, mostly ASCII, and no
    symbol stuck inside a word (Polish "ł" read as cp1252 gives "cz³owiek")."""
    accented = 0
    for match in HIGH.finditer(text):
        char, index = match.group(), match.start()
        if char not in WESTERN:
            return False
        if char.isalpha():
            accented += 1
        elif text[index - 1 : index].isalpha() and text[index + 1 : index + 2].isalpha() and char not in "’‘·":
            return False
    letters = len(NOT_ASCII_LETTER.sub("", text)) + accented
    return bool(letters) and accented <= 0.3 * letters


def binary(text: str) -> bool:
    """More than 1% control characters (other than tab, newlines, form feed and escape)."""
    return len(CONTROLS.findall(text)) > 0.01 * len(text)
