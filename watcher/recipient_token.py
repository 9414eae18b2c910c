"""The signed token in every message's unsubscribe and manage links (RFC 8058 one-click).

A token names one recipient and the watches of one message, by their ids (#25: by name, a long
name made the token too long, and it then named every watch of the recipient: one unsubscribe
left them all). It is signed with HMAC-SHA256 under a key derived from the app's secret key (so
it can never be mistaken for a session cookie or any other value signed with the same secret),
never expires, and holds nothing secret: the payload is the recipient's own address and the
watch ids, compact JSON in URL-safe base64, readable by whoever holds the mail. Only the
signature proves it was ours; any altered byte makes `read_token` return None.

Tokens of version 1 (made before #25) named the watches by name, and an empty list meant every
watch of the recipient; they are still read (`TokenWatches.names`), as they were meant.

Pure: no clock, no database. Part of the shared core, used by mail (to build links) and web (to
read them).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

VERSION = "2"
LEGACY_VERSION = "1"  # watches by name (before #25)
EVERY = "all"  # version 2's payload for "every watch of the recipient"
MAX_LENGTH = 700
_PURPOSE = b"trialwatch recipient links v1"


@dataclass(frozen=True)
class TokenWatches:
    """What a valid token names: the recipient and the watches of its message, by id (`ids`), by
    name (`names`, a version 1 token), or every watch of the recipient (`every`)."""

    recipient: str
    ids: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    every: bool = False


def _key(secret: bytes) -> bytes:
    return hmac.new(secret, _PURPOSE, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text or len(text) % 4 == 1 or text.strip("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"):
        raise ValueError("not URL-safe base64")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(secret: bytes, recipient: str, watch_ids: Sequence[int]) -> str:
    """`2.<payload>.<signature>`, URL-safe; the same inputs always give the same token (a message
    sent again carries the same links). A message speaking for so many watches that the token
    would pass MAX_LENGTH (some 80) names every watch of the recipient instead (a mail header
    line must stay under 998 characters, and a URL cannot be folded); a name's length never
    matters."""
    token = _signed(secret, VERSION, recipient, list(dict.fromkeys(watch_ids)))
    return token if len(token) <= MAX_LENGTH else _signed(secret, VERSION, recipient, EVERY)


def _signed(secret: bytes, version: str, recipient: str, watches: Any) -> str:
    body = json.dumps([recipient.strip().lower(), watches], separators=(",", ":"))
    signed = f"{version}.{_b64(body.encode('utf-8'))}"
    signature = hmac.new(_key(secret), signed.encode("ascii"), hashlib.sha256).digest()
    return f"{signed}.{_b64(signature)}"


def read_token(secret: bytes, token: str) -> TokenWatches | None:
    """What `token` names when it is one of ours, untouched (either version); else None."""
    version, _, rest = token.partition(".")
    payload, _, signature_text = rest.partition(".")
    if version not in (VERSION, LEGACY_VERSION) or not payload or not signature_text:
        return None
    try:
        signature = _unb64(signature_text)
        expected = hmac.new(_key(secret), f"{version}.{payload}".encode("ascii"), hashlib.sha256).digest()
        if not hmac.compare_digest(signature, expected) or _b64(signature) != signature_text:
            return None
        recipient, watches = json.loads(_unb64(payload).decode("utf-8"))
    except (ValueError, UnicodeError, binascii.Error, TypeError):
        return None
    if not isinstance(recipient, str):
        return None
    return _legacy(recipient, watches) if version == LEGACY_VERSION else _current(recipient, watches)


def _current(recipient: str, watches: Any) -> TokenWatches | None:
    if watches == EVERY:
        return TokenWatches(recipient, every=True)
    if not isinstance(watches, list) or not all(type(ident) is int for ident in watches):
        return None
    return TokenWatches(recipient, ids=watches)


def _legacy(recipient: str, watches: Any) -> TokenWatches | None:
    if not isinstance(watches, list) or not all(isinstance(name, str) for name in watches):
        return None
    return TokenWatches(recipient, names=watches, every=not watches)
