"""recipient_token: the signed token of the unsubscribe and manage links (property tests). It names
the watches by id (#25); tokens made before (version 1, by name) are still read."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from watcher.recipient_token import MAX_LENGTH, TokenWatches, make_token, read_token

SECRET = b"a test secret key"
addresses = st.emails().map(str.lower)
ids = st.lists(st.integers(min_value=1, max_value=10**9), max_size=6, unique=True)
# made by trialwatch before #25 (version 1, watches by name), with SECRET: links in mails already sent
LEGACY_ONE = "1.WyJvbmNAZXhhbXBsZS5vcmciLFsiUkNDIGJpc3BlY2lmaWNzIl1d.7NB6vCjZ6uOgjIRNwmhecdFONkvzrFKWM_ftVNqL2kw"
LEGACY_EVERY = "1.WyJvbmNAZXhhbXBsZS5vcmciLFtdXQ._WF-fvYqyBYfhHHv3oZE3CHHpmUvYddXCFhHnxBVpjo"


@given(recipient=addresses, watches=ids)
def test_a_token_reads_back_what_it_was_made_of(recipient, watches):
    token = make_token(SECRET, recipient, watches)
    assert read_token(SECRET, token) == TokenWatches(recipient, ids=watches)
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", token)  # URL-safe: a path segment as it is
    assert make_token(SECRET, recipient, watches) == token  # the same message sent again: the same links


@given(recipient=addresses, watches=ids, data=st.data())
def test_any_altered_character_makes_it_worthless(recipient, watches, data):
    token = make_token(SECRET, recipient, watches)
    where = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    other = data.draw(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=%é"))
    altered = token[:where] + other + token[where + 1 :]
    if altered != token:
        assert read_token(SECRET, altered) is None


@given(recipient=addresses, watches=ids, cut=st.integers(min_value=1, max_value=30))
def test_a_cut_or_lengthened_token_is_worthless(recipient, watches, cut):
    token = make_token(SECRET, recipient, watches)
    assert read_token(SECRET, token[:-cut]) is None
    assert read_token(SECRET, token + "A" * cut) is None


@given(recipient=addresses, watches=ids)
def test_another_key_reads_nothing(recipient, watches):
    assert read_token(b"another key", make_token(SECRET, recipient, watches)) is None


def test_garbage_is_none():
    for garbage in ("", ".", "1..", "2..", "1.e30.AAAA", "2.abc.def", "3.abc.def", "1.!!!.???", "2." + "A" * 5000):
        assert read_token(SECRET, garbage) is None


def test_a_message_for_many_watches_names_each_and_only_a_huge_one_names_every_watch():
    token = make_token(SECRET, "onc@example.org", list(range(1000, 1060)))  # 60 watches: each named
    assert len(token) <= MAX_LENGTH
    assert read_token(SECRET, token) == TokenWatches("onc@example.org", ids=list(range(1000, 1060)))
    huge = make_token(SECRET, "onc@example.org", list(range(100_000, 100_200)))
    assert len(huge) <= MAX_LENGTH and read_token(SECRET, huge) == TokenWatches("onc@example.org", every=True)


def test_the_payload_is_the_address_and_watch_ids_only():
    token = make_token(SECRET, "Onc@Example.org", [7])
    assert SECRET.decode() not in token and read_token(SECRET, token) == TokenWatches("onc@example.org", ids=[7])


def test_tokens_made_before_watches_had_ids_are_read_as_they_were_meant():
    assert read_token(SECRET, LEGACY_ONE) == TokenWatches("onc@example.org", names=["RCC bispecifics"])
    assert read_token(SECRET, LEGACY_EVERY) == TokenWatches("onc@example.org", every=True)
    assert read_token(b"another key", LEGACY_ONE) is None
    version_two = "2" + LEGACY_ONE[1:]  # the same payload and signature under the other version: forged
    assert read_token(SECRET, version_two) is None


def test_a_version_2_payload_of_names_or_booleans_is_refused():
    from watcher.recipient_token import VERSION, _signed

    assert read_token(SECRET, _signed(SECRET, VERSION, "onc@example.org", ["RCC bispecifics"])) is None
    assert read_token(SECRET, _signed(SECRET, VERSION, "onc@example.org", [True])) is None
    assert read_token(SECRET, _signed(SECRET, VERSION, "onc@example.org", "everything")) is None
