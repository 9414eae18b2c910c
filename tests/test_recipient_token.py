"""recipient_token: the signed token of the unsubscribe and manage links (property tests)."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from watcher.recipient_token import MAX_LENGTH, make_token, read_token

SECRET = b"a test secret key"
addresses = st.emails().map(str.lower)
names = st.lists(st.text(min_size=1, max_size=40), max_size=4, unique=True)


@given(recipient=addresses, watches=names)
def test_a_token_reads_back_what_it_was_made_of(recipient, watches):
    token = make_token(SECRET, recipient, watches)
    assert read_token(SECRET, token) == (recipient, watches)
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", token)  # URL-safe: a path segment as it is
    assert make_token(SECRET, recipient, watches) == token  # the same message sent again: the same links


@given(recipient=addresses, watches=names, data=st.data())
def test_any_altered_character_makes_it_worthless(recipient, watches, data):
    token = make_token(SECRET, recipient, watches)
    where = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    other = data.draw(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=%é"))
    altered = token[:where] + other + token[where + 1 :]
    if altered != token:
        assert read_token(SECRET, altered) is None


@given(recipient=addresses, watches=names, cut=st.integers(min_value=1, max_value=30))
def test_a_cut_or_lengthened_token_is_worthless(recipient, watches, cut):
    token = make_token(SECRET, recipient, watches)
    assert read_token(SECRET, token[:-cut]) is None
    assert read_token(SECRET, token + "A" * cut) is None


@given(recipient=addresses, watches=names)
def test_another_key_reads_nothing(recipient, watches):
    assert read_token(b"another key", make_token(SECRET, recipient, watches)) is None


def test_garbage_is_none():
    for garbage in ("", ".", "1..", "1.e30.AAAA", "2.abc.def", "1.!!!.???", "1." + "A" * 5000):
        assert read_token(SECRET, garbage) is None


def test_a_message_for_very_many_watches_names_none_and_stays_short():
    watches = [f"watch number {n} with a long descriptive name" for n in range(40)]
    token = make_token(SECRET, "onc@example.org", watches)
    assert len(token) <= MAX_LENGTH
    assert read_token(SECRET, token) == ("onc@example.org", [])  # every watch of the recipient


def test_the_payload_is_the_address_and_watch_names_only():
    token = make_token(SECRET, "Onc@Example.org", ["RCC bispecifics"])
    assert SECRET.decode() not in token and read_token(SECRET, token) == ("onc@example.org", ["RCC bispecifics"])
