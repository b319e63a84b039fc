"""Identifiers (product, subscription, deployment ids) are data, not markup: how they are written where
they would otherwise be read as something else.

- Markdown (Dagster metadata): the characters that make links, images, emphasis, code or HTML are
  backslash-escaped (CommonMark 0.31.2, "Backslash escapes": any ASCII punctuation may be escaped), line
  breaks become spaces, control and bidirectional-override characters are shown as `\\uXXXX`, and a cell is
  cut at MARKDOWN_CHARACTERS.
- URL path segments and ids built from them (FOCUS `AllocatedResourceId`): percent-encoded (RFC 3986
  section 2.1, every character outside the unreserved set), so `../..` or `/` cannot add segments.
- A terminal (`chargeback report`'s table): control characters (CR, LF, ESC...) and bidirectional
  overrides (Unicode UAX #9: U+202A-U+202E, U+2066-U+2069, U+200E, U+200F, U+061C) are shown as escapes,
  and a name longer than TERMINAL_CHARACTERS is cut with its length said. The CSV and JSON formats keep
  exact values (they are for programs).
"""

import unicodedata
from urllib.parse import quote

MARKDOWN_CHARACTERS = 200
TERMINAL_CHARACTERS = 80
# What makes markup in CommonMark/GFM: emphasis, strikethrough, code, links and images, HTML, entities, tables.
_MARKDOWN_SPECIAL = set("\\`*_[]<>!|~&")
_BIDI_CONTROLS = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _visible(character: str) -> str:
    """A control or bidirectional-override character as its escape; any other character as it is."""
    if unicodedata.category(character) == "Cc" or character in _BIDI_CONTROLS:
        return f"\\u{ord(character):04x}"
    return character


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def markdown_text(text: str, limit: int = MARKDOWN_CHARACTERS) -> str:
    """`text` as literal markdown inline text (a table cell): nothing in it renders as markup."""
    flat = _cut(text, limit).replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    return "".join("\\" + c if c in _MARKDOWN_SPECIAL else _visible(c) for c in flat)


def url_segment(text: str) -> str:
    """`text` as one percent-encoded URL path segment."""
    return quote(text, safe="")


def terminal_text(text: str, limit: int = TERMINAL_CHARACTERS) -> str:
    """`text` safe to print in a terminal's table: one line, no control or override character, bounded."""
    return "".join(_visible(c) for c in _cut(text, limit))
