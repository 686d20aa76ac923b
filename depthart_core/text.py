"""Strings read from files (checkpoint metadata, bag topic names) made safe to print.

A terminal obeys escape sequences: a file's `note` holding ESC [2J clears the screen, an OSC
sets the window title, a carriage return overwrites the line above. Control characters are
shown escaped instead, as Python writes them in a string literal.
"""

from __future__ import annotations

import unicodedata


def printable(text: object) -> str:
    """`str(text)` with every control or format character shown as its escape (\\x1b, \\r)."""
    return "".join(
        c if not unicodedata.category(c).startswith("C") else c.encode("unicode_escape").decode()
        for c in str(text)
    )
