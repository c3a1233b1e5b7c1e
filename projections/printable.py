"""Text from the log made safe to print on a terminal or in a report: control, format and separator characters escaped.

Meeting administration's text (a company's name, a title, an amendment's reason) is trusted, but a newline or an ESC
in it would still forge lines of `tally`, `audit history` or a report, or drive the reader's terminal, and a
bidirectional override would reorder what the reader sees. `meeting amend` refuses such text; these escape what the
log holds anyway (older rows, other publishers). Pure, no I/O.
"""

from __future__ import annotations

import unicodedata

# The Unicode categories escaped, with what each is called in a user message.
UNPRINTABLE = {
    "Cc": "a control character",
    "Cf": "a format character",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}


def escaped(text: str) -> str:
    """``text`` with each UNPRINTABLE character as a Python-style escape (``\\n``, ``\\x1b``, ``\\u202e``)."""
    if text.isprintable():  # the common case, in C: printable text has no character of those categories
        return text
    return "".join(repr(char)[1:-1] if unicodedata.category(char) in UNPRINTABLE else char for char in text)
