"""JSON as compact UTF-8 bytes, keys in their order, for digests, stored versions and the poll's
spool: orjson (tens of times faster than the json module on registry records), the json module
for what orjson refuses: an integer over 64 bits, or a lone surrogate escape (`\\ud800`) that
the json module let through when parsing (then written as an escape again)."""

from __future__ import annotations

import json
from typing import Any

import orjson


def compact_json(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        try:
            return text.encode()
        except UnicodeEncodeError:  # a lone surrogate: not UTF-8, kept as its escape
            return json.dumps(value, separators=(",", ":")).encode()
