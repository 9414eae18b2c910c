"""The pages a recipient of mail reaches without signing in, through the signed links at the foot
of every message (README, "Recipients look after their own mail"):

- `POST /u/TOKEN` with `List-Unsubscribe=One-Click` (what mail clients send, RFC 8058; the button
  of the GET page sends the same): the recipient leaves the watches of that message. No session
  and no CSRF token: the signed token is the proof.
- `GET /u/TOKEN`: what will stop, and one button that POSTs. A GET never changes anything (link
  scanners fetch every URL in a mail).
- `GET /m/TOKEN`: every watch the recipient receives, each with its schedule (the watch's, or
  immediate / daily / weekly, or paused until a date) and unsubscribe / subscribe again, saved by
  `POST /m/TOKEN` (a form with a CSRF token).

A bad or altered token is a 404 that changes nothing. TOKEN: watcher.recipient_token; it names the
watches by id (a token made before #25, by name: a name one stored watch only ever had means that
watch, a name taken again by a new watch means none, so an old link never reaches the new one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from watcher.config import Config
from watcher.recipient_token import TokenWatches, read_token
from watcher.store import recipients
from watcher.store.watch_keys import held_by_several
from watcher.store.watches import watch_of, watch_rows
from watcher.watch import WatchConfig
from watcher.web.auth import context_of, form_of, in_db
from watcher.web.limits import read_form
from watcher.web.recipient_forms import Choice, parse_choices, pause_day
from watcher.web.render import render
from watcher.web.sessions import load_session

ONE_CLICK = "One-Click"


@dataclass(frozen=True)
class Link:
    """What a valid token names: the recipient, and the watches of its message (all of theirs
    when the message named none)."""

    token: str
    recipient: str
    watches: TokenWatches


@dataclass(frozen=True)
class Received:
    """A watch the recipient receives, with its id (None: a config watch not stored yet)."""

    id: int | None
    watch: WatchConfig


async def _link(request: Request) -> Link | None:
    key = await run_in_threadpool(request.app.state.session_keys.get, request)
    token = str(request.path_params["token"])
    found = read_token(key.encode(), token)
    return None if found is None else Link(token=token, recipient=found.recipient, watches=found)


def _invalid(request: Request) -> Response:
    return render(request, "recipient_invalid.html", status_code=404)


def receives(session: Session, config: Config, recipient: str) -> list[Received]:
    """The watches that list this recipient: the config's and the database's (web watches)."""
    by_name = {watch.name: Received(None, watch) for watch in config.watch}
    by_name.update({row.name: Received(row.id, watch_of(row)) for row in watch_rows(session=session)})
    return [r for r in by_name.values() if recipient in {a.lower() for a in r.watch.recipients}]


def _named(session: Session, link: Link, theirs: list[Received]) -> list[WatchConfig]:
    """The watches of the link's message that the recipient still receives."""
    named = link.watches
    if named.every:
        return [r.watch for r in theirs]
    several = held_by_several(session=session, names=named.names) if named.names else set()
    return [
        r.watch
        for r in theirs
        if (r.id is not None and r.id in named.ids) or (r.watch.name in named.names and r.watch.name not in several)
    ]


def _rows(session: Session, watches: list[WatchConfig], recipient: str, now: datetime) -> list[recipients.Receiving]:
    chosen = [(w.name, w.digest, w.recipients) for w in watches]
    return recipients.receiving(session=session, watches=chosen, now=now, recipient=recipient)


async def watch_recipients(request: Request, name: str, definition: dict[str, Any]) -> list[recipients.Receiving]:
    """Each recipient of a watch with their schedule, pause and opt-out (the watch's page)."""
    now = context_of(request).now()
    chosen = [(name, str(definition.get("digest") or "daily"), list(definition.get("recipients") or []))]
    return await in_db(request, lambda session: recipients.receiving(session=session, watches=chosen, now=now))


async def unsubscribe_page(request: Request) -> Response:
    link = await _link(request)
    if link is None:
        return _invalid(request)
    context = context_of(request)
    now, config = context.now(), context.config()

    def named_rows(session: Session) -> list[recipients.Receiving]:
        return _rows(session, _named(session, link, receives(session, config, link.recipient)), link.recipient, now)

    rows = await in_db(request, named_rows)
    return render(request, "unsubscribe.html", {"link": link, "rows": rows, "done": False})


async def unsubscribe(request: Request) -> Response:
    link = await _link(request)
    if link is None:
        return _invalid(request)
    form = await read_form(request)
    if form.get("List-Unsubscribe") != ONE_CLICK:
        return render(request, "unsubscribe.html", {"link": link, "rows": [], "done": False, "bad_body": True}, 400)
    context = context_of(request)
    now, config = context.now(), context.config()

    def leave(session: Session) -> list[recipients.Receiving]:
        named = _named(session, link, receives(session, config, link.recipient))
        recipients.unsubscribe(session=session, recipient=link.recipient, watches=[w.name for w in named], now=now)
        return _rows(session, named, link.recipient, now)

    rows = await in_db(request, leave)
    return render(request, "unsubscribe.html", {"link": link, "rows": rows, "done": True})


async def manage_page(request: Request) -> Response:
    link = await _link(request)
    if link is None:
        return _invalid(request)
    await load_session(request)  # the form's CSRF token
    return await _manage(request, link, errors={}, saved=request.query_params.get("saved") == "1")


async def _manage(request: Request, link: Link, *, errors: dict[str, str], saved: bool, status: int = 200) -> Response:
    context = context_of(request)
    now, config = context.now(), context.config()
    rows = await in_db(
        request, lambda s: _rows(s, [r.watch for r in receives(s, config, link.recipient)], link.recipient, now)
    )
    zone = config.digest.zone
    page: dict[str, Any] = {
        "link": link, "rows": rows, "errors": errors, "saved": saved, "timezone": config.digest.timezone,
        "pause_days": {row.watch: pause_day(row.paused_until, zone) for row in rows},
        "tomorrow": (now.astimezone(zone).date() + timedelta(days=1)).isoformat(),
    }  # fmt: skip
    return render(request, "manage.html", page, status)


async def manage_save(request: Request) -> Response:
    link = await _link(request)
    if link is None:
        return _invalid(request)
    form = await form_of(request)  # 403 without the page's CSRF token
    context = context_of(request)
    now, config = context.now(), context.config()
    today = now.astimezone(config.digest.zone).date()
    theirs = await in_db(request, lambda s: [r.watch.name for r in receives(s, config, link.recipient)])
    choices, errors = parse_choices(form, theirs, today)
    if errors:
        return await _manage(request, link, errors=errors, saved=False, status=400)

    def save(session: Session) -> None:
        for choice in choices:
            _save_choice(session, link.recipient, choice, config, now)

    await in_db(request, save)
    return RedirectResponse(f"/m/{link.token}?saved=1", status_code=303)


def _save_choice(session: Session, recipient: str, choice: Choice, config: Config, now: datetime) -> None:
    if choice.subscribed:
        recipients.subscribe(session=session, recipient=recipient, watch=choice.watch, now=now)
    else:
        recipients.unsubscribe(session=session, recipient=recipient, watches=[choice.watch], now=now)
    until = _start_of(choice.paused_until, config) if choice.paused_until else None
    recipients.set_schedule(
        session=session, watch=choice.watch, recipient=recipient, schedule=choice.schedule, paused_until=until,
        pause_changes=choice.pause_changes, now=now,
    )  # fmt: skip


def _start_of(day: date, config: Config) -> datetime:
    """A pause "until a day" ends when that day starts, in the digest's time zone."""
    return datetime.combine(day, time(0, 0), tzinfo=config.digest.zone)


routes: list[BaseRoute] = [
    Route("/u/{token}", unsubscribe_page, methods=["GET"]),
    Route("/u/{token}", unsubscribe, methods=["POST"]),
    Route("/m/{token}", manage_page, methods=["GET"]),
    Route("/m/{token}", manage_save, methods=["POST"]),
]
