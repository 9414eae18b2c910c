"""A password check behind the sign-in throttle (watcher.store.throttle), for /login and the
current password on /account/password: the attempt is stored and committed first, then counted
and, when allowed, checked, in a second transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlmodel import Session
from starlette.requests import Request

from watcher.store import throttle
from watcher.web.auth import client_address, context_of, in_db

T = TypeVar("T")
RETRY_AFTER = str(int(throttle.WINDOW.total_seconds()))
BLOCKED = "Too many failed sign-ins. Wait 15 minutes and try again."


@dataclass(frozen=True)
class Checked(Generic[T]):
    """What `check` gave (None: the password was wrong), or `blocked` without checking."""

    value: T | None = None
    blocked: bool = False


async def throttled_check(request: Request, account: str, check: Callable[[Session], T | None]) -> Checked[T]:
    """`check(session)` (a password check: its result, None when wrong), unless `account` from
    this client's address has failed too often; a result that is not None clears the pair."""
    address, now = client_address(request), context_of(request).now()
    attempt = await in_db(
        request, lambda session: throttle.reserve_attempt(session=session, account=account, address=address, now=now)
    )

    def run(session: Session) -> Checked[T]:
        if not throttle.attempt_allowed(session=session, attempt_id=attempt, account=account, address=address, now=now):
            return Checked(blocked=True)
        value = check(session)
        if value is not None:
            throttle.attempt_succeeded(session=session, attempt_id=attempt, account=account, address=address)
        return Checked(value=value)

    return await in_db(request, run)
