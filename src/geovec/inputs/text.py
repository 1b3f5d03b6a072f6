"""Checks every piece of user text passes before it is embedded, stored or echoed back."""

from __future__ import annotations

from geovec.errors import GeovecInputError


def check_utf8(field: str, text: str) -> str:
    """``text`` if it is valid Unicode, else an error naming ``field``.

    Invalid UTF-8 bytes reach Python as lone surrogates (argv and files read with ``surrogateescape``, JSON's
    ``"\\ud800"``); left in, they crash the tokenizer or the JSON / SQLite writers far from the input that held them.
    The message shows the offending byte, never the text itself (which cannot be printed).
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        what = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"lone surrogate U+{code:04X}"
        raise GeovecInputError(field, f"not valid UTF-8 ({what} at character {exc.start}): give the text "
                                      "encoded as UTF-8") from None
    return text
