"""Throttled password checks: sign-in, and the current password on /account/password.

Every check first stores its attempt (a `SignInFailure` row, committed by the caller) and only
then counts the attempts of the last `WINDOW`, its own included: so of any number of parallel
attempts no more than the limit get their password checked (the last of them to commit sees all
the others). A refused attempt removes its row (hammering does not extend the block); a right
password removes its row and the (account, address) pair's failures; a wrong one stays counted.

Three limits, narrowest first: `PAIR_FAILURES` for one account from one address (a guesser is
stopped at once, and only there), `ADDRESS_FAILURES` for one address over any accounts, and
`ACCOUNT_FAILURES` for one account over every address: high enough that strangers cannot lock
its owner out with a handful of guesses, low enough to stop a distributed guess.

Stored and looked-up values go through the same `account_key` and `address_key`, so an address
longer than the column still accumulates its failures. Small keyword-only functions that take
the session; no commits here.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from watcher.store.models import SignInFailure

WINDOW = timedelta(minutes=15)
PAIR_FAILURES = 5
ADDRESS_FAILURES = 20
ACCOUNT_FAILURES = 100
KEPT_FOR = timedelta(days=1)
ACCOUNT_LENGTH, ADDRESS_LENGTH = 320, 64  # the columns' lengths


def account_key(account: str) -> str:
    """The account as stored and compared: trimmed, lower case, cut to the column."""
    return account.strip().lower()[:ACCOUNT_LENGTH]


def address_key(address: str) -> str:
    """The client address as stored and compared: trimmed, cut to the column."""
    return address.strip()[:ADDRESS_LENGTH]


def reserve_attempt(*, session: Session, account: str, address: str, now: datetime) -> int:
    """Store a password check about to happen (counted as a failure until it succeeds); its id.
    The caller commits before `attempt_allowed` counts."""
    session.execute(delete(SignInFailure).where(col(SignInFailure.at) < now - KEPT_FOR))
    row = SignInFailure(account=account_key(account), address=address_key(address), at=now)
    session.add(row)
    session.flush()
    assert row.id is not None
    return row.id


def attempt_allowed(*, session: Session, attempt_id: int, account: str, address: str, now: datetime) -> bool:
    """Whether the reserved attempt may check its password: no limit is exceeded counting every
    attempt of the window, this one included. A refused attempt is forgotten."""
    account, address = account_key(account), address_key(address)
    recent = col(SignInFailure.at) > now - WINDOW
    limits = (
        (PAIR_FAILURES, (col(SignInFailure.account) == account, col(SignInFailure.address) == address)),
        (ADDRESS_FAILURES, (col(SignInFailure.address) == address,)),
        (ACCOUNT_FAILURES, (col(SignInFailure.account) == account,)),
    )
    for limit, where in limits:
        count = session.exec(select(func.count()).select_from(SignInFailure).where(recent, *where)).one()
        if int(count) > limit:
            session.execute(delete(SignInFailure).where(col(SignInFailure.id) == attempt_id))
            return False
    return True


def attempt_succeeded(*, session: Session, attempt_id: int, account: str, address: str) -> None:
    """The password was right: this attempt and the pair's failures are forgotten (the account's
    failures from other addresses still count against them)."""
    session.execute(delete(SignInFailure).where(col(SignInFailure.id) == attempt_id))
    session.execute(
        delete(SignInFailure).where(
            col(SignInFailure.account) == account_key(account), col(SignInFailure.address) == address_key(address)
        )
    )
