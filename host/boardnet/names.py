"""Names and text from user data, made safe for the generated C and MicroPython.

Model, feature and label names come from users; before any reaches a template it passes
through one of these: `identifier` / `c_prefix` / `micropython_module` for names,
`c_string` / `py_string` for string literals, `comment_text` for comments.
"""

from __future__ import annotations

import difflib
import keyword
import re
import unicodedata
from typing import Any

import numpy as np

# C99 guarantees 63 significant characters in internal identifiers; the prefix leaves room
# for the longest suffix boardnet adds ("_features", "_UNUSED").
MAX_PREFIX = 40
MAX_C_STRING = 255  # bytes; -Wpedantic warns above C99's 4095-character literal limit
MAX_COMMENT = 100
MAX_SHOWN = 40  # characters of a name from user data that a message or `info` shows
MAX_LISTED = 30  # names a message lists before it says how many more there are

C_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for goto "
    "if inline int long register restrict return short signed sizeof static struct switch "
    "typedef union unsigned void volatile while _Bool _Complex _Imaginary _Alignas _Alignof "
    "_Atomic _Generic _Noreturn _Static_assert _Thread_local bool true false asm".split()
)


def ascii_fold(text: str) -> str:
    """`text` with accents stripped and every other non-ASCII character dropped."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def identifier(name: str, default: str = "model", max_len: int = MAX_PREFIX) -> str:
    """A lower-case [a-z0-9_] identifier from any string: never empty, never starting with a
    digit or underscore, never a C or Python keyword, at most `max_len` characters."""
    s = re.sub(r"[^a-z0-9]+", "_", ascii_fold(name).lower()).strip("_")
    if not s:
        s = default
    if s[0].isdigit():
        s = f"{default}_{s}"
    if s in C_KEYWORDS or keyword.iskeyword(s) or keyword.issoftkeyword(s):
        s = f"{s}_{default}"
    if len(s) > max_len:
        s = s[:max_len].rstrip("_")
    return s


def comment_text(text: str, max_len: int = MAX_COMMENT) -> str:
    """`text` made safe inside a C block comment or a Python comment: one line of printable
    ASCII with no `*`, `/`, `\\`, `?` (so no `*/`, `/*`, line splice or trigraph) and no
    quotes (so tools that skim the file for strings are not misled)."""
    s = re.sub(r"[^A-Za-z0-9 _.,:;+=()\[\]{}<>!@#$%&~^|-]", "_", ascii_fold(text))
    return s if len(s) <= max_len else s[: max_len - 3] + "..."


def shown(text: str, quote: bool = True, max_len: int = MAX_SHOWN) -> str:
    """A name from user data as messages and `info` print it: one line (control characters,
    quotes and backslashes escaped as Python escapes them), in single quotes unless `quote`
    is False, and a long one cut in the middle with its length, so an error stays one short
    line that a person can read."""
    if len(text) > max_len:
        head, tail = text[: max_len - max_len // 4 - 3], text[-(max_len // 4):]
        s = f"{_escape(head)}...{_escape(tail)}"
        return (f"'{s}'" if quote else s) + f" ({len(text)} characters)"
    return f"'{_escape(text)}'" if quote else _escape(text)


def _escape(text: str) -> str:
    out = []
    for ch in text:
        if ch in "\\'":
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(repr(ch)[1:-1])  # \r, \n, \x00, \u200b ...
    return "".join(out)


def listed(names: Any, max_names: int = MAX_LISTED) -> str:
    """Names (columns, features, labels) as one line for a message: each `shown` without
    quotes, comma-separated, at most `max_names` of them."""
    names = list(names)
    text = ", ".join(shown(str(n), quote=False) for n in names[:max_names])
    return text + (f", ... ({len(names)} in all)" if len(names) > max_names else "")


def nearest(name: str, candidates: Any) -> str | None:
    """The candidate closest to a misspelt `name` (same letters in another case first), or None."""
    candidates = [str(c) for c in candidates]
    for c in candidates:
        if c.casefold() == name.casefold() or c.strip() == name.strip():
            return c
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return close[0] if close else None


def truncate_utf8(text: str, max_bytes: int) -> str:
    """`text` cut on a character boundary so that its UTF-8 form fits in `max_bytes`."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[: max_bytes - 3].decode("utf-8", "ignore") + "..."


def c_prefix(name: str) -> str:
    """The C prefix for a model name: lower-case functions and arrays, upper-case macros."""
    return identifier(name)


def c_float(v: Any) -> str:
    """An exact float32 literal: 9 significant digits always round-trip a float32."""
    x = np.float32(v)
    if not np.isfinite(x):
        raise ValueError(f"not a finite float32: {v!r}")
    return f"{float(x):.8e}f"


def c_string(text: str, max_bytes: int = MAX_C_STRING) -> str:
    """A C string literal holding `text` as UTF-8. Octal escapes (at most 3 digits, so a
    following digit cannot extend them) for everything outside plain printable ASCII, and
    for `"`, `\\` and `?` (trigraphs)."""
    out = []
    for byte in truncate_utf8(text, max_bytes).encode("utf-8"):
        ch = chr(byte)
        if 0x20 <= byte < 0x7F and ch not in '"\\?':
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


# Names a module file must not take: they would shadow what the module (or a typical
# program next to it) imports on a board.
MP_RESERVED = frozenset(
    "array asyncio binascii builtins cmath collections deflate errno framebuf gc hashlib heapq "
    "io json machine math micropython mip network os platform random re select socket ssl "
    "struct sys time uasyncio uctypes zlib bluetooth esp esp32 rp2 neopixel dht onewire "
    "boot main".split()
)


def micropython_module(name: str) -> str:
    """The import name (and file stem) for a model name: an identifier that is no keyword and
    shadows no MicroPython module."""
    s = identifier(name)
    return f"{s}_model" if s in MP_RESERVED else s


def py_string(text: str) -> str:
    """A str literal holding `text`, valid in CPython and MicroPython: printable ASCII as is,
    everything else (quotes, backslash, newlines, controls, non-ASCII) as an escape, so the
    literal is one line that nothing can break out of. Lone surrogates become U+FFFD."""
    text = text.encode("utf-8", "replace").decode("utf-8")  # unpaired surrogates -> "?"
    out = []
    for ch in text:
        o = ord(ch)
        if 0x20 <= o < 0x7F and ch not in "\"\\":
            out.append(ch)
        elif o < 0x80:
            out.append(f"\\x{o:02x}")
        elif o <= 0xFFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    return '"' + "".join(out) + '"'


def bytes_lines(data: bytes, per_line: int = 32) -> list[str]:
    """`data` as the insides of bytes literals, every byte a \\xNN escape."""
    return [
        "".join(f"\\x{b:02x}" for b in data[i : i + per_line])
        for i in range(0, len(data), per_line)
    ]
