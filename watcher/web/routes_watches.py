"""Placeholder: filled in after the skeleton."""

from __future__ import annotations

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
