"""Text from outside made safe once, where it enters (#25): a lone surrogate (`\\ud800`, which a
JSON escape can carry but no UTF-8 text, database or mail can) becomes U+FFFD and NUL (which
PostgreSQL's text refuses) is removed where JSON is parsed (watcher.jsontext) and feed items are
made; characters XML 1.0 forbids (C0 controls but tab, line feed and carriage return; U+FFFE,
U+FFFF) are removed where text reaches an Atom feed or a mail header."""

from __future__ import annotations

import re
from typing import Any

REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def without_surrogates(text: str) -> str:
    """`text` with each lone surrogate replaced by U+FFFD (the json module joins real pairs) and
    NUL removed (PostgreSQL's text cannot hold it)."""
    return _SURROGATE.sub(REPLACEMENT, text).replace("\x00", "")


def cleaned(value: Any) -> Any:
    """A parsed JSON value with every string (keys included) `without_surrogates`."""
    if isinstance(value, str):
        return without_surrogates(value)
    if isinstance(value, dict):
        return {cleaned(key): cleaned(item) for key, item in value.items()}
    if isinstance(value, list):
        return [cleaned(item) for item in value]
    return value


def xml_text(text: str) -> str:
    """`text` without the characters XML 1.0 cannot hold (lone surrogates included)."""
    return _NOT_XML.sub("", text)
