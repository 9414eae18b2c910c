"""The signed token in every message's unsubscribe and manage links (RFC 8058 one-click).

A token names one recipient and the watches of one message. It is signed with HMAC-SHA256 under
a key derived from the app's secret key (so it can never be mistaken for a session cookie or any
other value signed with the same secret), never expires, and holds nothing secret: the payload is
the recipient's own address and the watch names, compact JSON in URL-safe base64, readable by
whoever holds the mail. Only the signature proves it was ours; any altered byte makes
`read_token` return None.

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

VERSION = "1"
MAX_LENGTH = 700
_PURPOSE = b"trialwatch recipient links v1"


def _key(secret: bytes) -> bytes:
    return hmac.new(secret, _PURPOSE, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text or len(text) % 4 == 1 or text.strip("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"):
        raise ValueError("not URL-safe base64")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(secret: bytes, recipient: str, watches: Sequence[str]) -> str:
    """`1.<payload>.<signature>`, URL-safe; the same inputs always give the same token (a message
    sent again carries the same links). A message speaking for so many watches that the token
    would pass MAX_LENGTH names none: an empty list means every watch of the recipient (a mail
    header line must stay under 998 characters, and a URL cannot be folded)."""
    token = _signed(secret, recipient, list(dict.fromkeys(watches)))
    return token if len(token) <= MAX_LENGTH else _signed(secret, recipient, [])


def _signed(secret: bytes, recipient: str, watches: list[str]) -> str:
    body = json.dumps([recipient.strip().lower(), watches], separators=(",", ":"))
    payload = _b64(body.encode("utf-8"))
    signed = f"{VERSION}.{payload}"
    signature = hmac.new(_key(secret), signed.encode("ascii"), hashlib.sha256).digest()
    return f"{signed}.{_b64(signature)}"


def read_token(secret: bytes, token: str) -> tuple[str, list[str]] | None:
    """(recipient, watches) when `token` is one of ours, untouched; else None."""
    version, _, rest = token.partition(".")
    payload, _, signature_text = rest.partition(".")
    if version != VERSION or not payload or not signature_text:
        return None
    try:
        signature = _unb64(signature_text)
        expected = hmac.new(_key(secret), f"{version}.{payload}".encode("ascii"), hashlib.sha256).digest()
        if not hmac.compare_digest(signature, expected) or _b64(signature) != signature_text:
            return None
        recipient, watches = json.loads(_unb64(payload).decode("utf-8"))
    except (ValueError, UnicodeError, binascii.Error, TypeError):
        return None
    if not isinstance(recipient, str) or not isinstance(watches, list):
        return None
    if not all(isinstance(name, str) for name in watches):
        return None
    return recipient, watches
