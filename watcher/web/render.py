"""Templates (Jinja2, autoescaped, from watcher/web/templates) and the one way pages render them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from watcher.channels import masked
from watcher.config import DigestConfig
from watcher.web.rules_form import RULE_CHOICES, RULE_FIELDS, rules_in_words
from watcher.web.sessions import SCOPE_KEY, WebSession

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


def _when(value: datetime | None) -> str:
    """A stored time as people read it: 2026-11-21 10:00 UTC (empty when never)."""
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""


def _show(value: Any) -> str:
    """A stored value in an audit line: lists joined, nothing as a dash."""
    if value is None or value == []:
        return "—"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


def schedule_text(digest: str, config: DigestConfig) -> str:
    """'daily at 07:00 (Europe/Paris)', 'weekly on Monday at 07:00 (UTC)', 'after each poll'."""
    at = f"{config.time:%H:%M} ({config.timezone})"
    if digest == "weekly":
        return f"weekly on {config.weekday.capitalize()} at {at}"
    if digest == "immediate":
        return "after each poll"
    return f"daily at {at}"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["show"] = _show
    env.filters["path_part"] = lambda value: quote(str(value), safe="")
    env.filters["rules_in_words"] = rules_in_words  # the rules of a watch (#15)
    env.filters["masked"] = masked  # a channel URL as it may be shown (#24)
    env.globals["rule_choices"] = RULE_CHOICES
    env.globals["rule_fields"] = RULE_FIELDS
    return env


templates = Jinja2Templates(env=_environment())


def _csrf_token(request: Request) -> str:
    web_session = request.scope.get(SCOPE_KEY)
    return web_session.csrf_token() if isinstance(web_session, WebSession) else ""


def render(request: Request, name: str, context: dict[str, Any] | None = None, status_code: int = 200) -> Response:
    """The page `name` with the signed-in user, the CSRF token and the current path at hand.
    A page with a form must have loaded the session first (require_user and load_session do)."""
    token = _csrf_token(request)
    base = {
        "user": getattr(request.state, "user", None),
        "csrf_token": token,
        "csrf_field": lambda: Markup('<input type="hidden" name="csrf_token" value="{}">').format(escape(token)),
        "path": request.url.path,
        "schedule": lambda digest: schedule_text(digest or "daily", request.app.state.context.config().digest),
    }
    return templates.TemplateResponse(request, name, {**base, **(context or {})}, status_code=status_code)
