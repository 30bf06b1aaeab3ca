"""Untrusted text made inert: control characters escaped, length bounded, no markup meaning.

Everything a participant or a job can choose (exception messages, log tails, layer names, file
and participant names) passes through `inert` before a terminal, a CSV cell or a page shows it.
Rich markup is not interpreted by callers (they wrap the result in `rich.text.Text`); this module
only removes what a terminal would act on: ANSI/OSC escapes, carriage returns, bidi overrides.
"""

from __future__ import annotations

import re
import unicodedata

# C0 controls except tab and newline, DEL, C1 controls, and the bidi/isolate overrides that can
# make a terminal show text in another order than it is stored ("Trojan source").
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
_CONTROL_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\x00")


def _escape(match: re.Match[str]) -> str:
    ch = match.group(0)
    if ch == "\n":
        return "\\n"
    if ch == "\t":
        return "\\t"
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def inert(text: object, limit: int = 2000, *, one_line: bool = False) -> str:
    """`text` with control characters shown as escapes and cut to `limit` characters.

    Args:
        limit: characters kept; the rest is replaced by a note saying how much was cut.
        one_line: escape newlines and tabs too (table cells, names).
    """
    s = text if isinstance(text, str) else str(text)
    cut = ""
    if len(s) > limit:
        cut = f" [+{len(s) - limit:,} characters not shown]"
        s = s[:limit]
    s = (_CONTROL_ONE_LINE if one_line else _CONTROL).sub(_escape, s)
    return s + cut


def name(text: object, limit: int = 80) -> str:
    """A participant, file or layer name for a table cell: one line, short, inert."""
    return inert(text, limit, one_line=True)


def base_name(filename: str, default: str = "submission.py") -> str:
    """The last path component of a client-supplied file name: a label to store, never a path to use."""
    last = re.split(r"[/\\]", filename)[-1].strip()
    last = _CONTROL_ONE_LINE.sub("", last)[:200]
    return default if last in {"", ".", ".."} else last


def csv_cell(value: object) -> object:
    """A spreadsheet cell that cannot run: formula prefixes get a leading quote (OWASP CSV injection)."""
    if not isinstance(value, str):
        return value
    s = inert(value, 1000, one_line=True)
    return "'" + s if s.startswith(FORMULA_PREFIXES) else s


def ascii_safe(text: str) -> str:
    """Text an ASCII-only terminal can print: accents dropped, symbols spelled out, the rest escaped."""
    out = []
    for ch in text:
        if ord(ch) < 128:
            out.append(ch)
            continue
        replacement = _ASCII.get(ch)
        if replacement is None:
            decomposed = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
            replacement = decomposed or f"\\u{ord(ch):04x}"
        out.append(replacement)
    return "".join(out)


_ASCII = {"✓": "ok", "✗": "x", "…": "...", "→": "->", "←": "<-", "Δ": "d", "±": "+/-", "×": "x", "•": "*",
          "─": "-", "━": "-", "│": "|", "┃": "|", "—": "-", "–": "-", "≤": "<=", "≥": ">=", "·": "."}
