"""Request bodies are capped before anything reads them (#25): a form takes at most
`FORM_BODY_LIMIT` bytes, the JSON API `API_BODY_LIMIT`. A declared Content-Length over the cap is
answered 413 before a byte of the body is read; a chunked body is counted as it streams in and
stopped with a 413 as soon as it passes the cap. Forms are parsed with small limits of their own
(`read_form`): no files, a bounded number of fields.
"""

from __future__ import annotations

from starlette.datastructures import FormData, Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FORM_BODY_LIMIT = 64 * 1024
API_BODY_LIMIT = 2 * 1024 * 1024
FORM_MAX_FIELDS = 500


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than this address takes ({limit // 1024} kB at most)")


def body_limit(path: str) -> int:
    return API_BODY_LIMIT if path.startswith("/api/") else FORM_BODY_LIMIT


class BodyLimitMiddleware:
    """Caps every request body (see the module docstring). It sits inside the reach of
    Starlette's exception middleware: the `BodyTooLarge` raised by the first read of a body
    declared too long, or by the read that passes the cap, becomes the app's 413 page or JSON."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(str(scope.get("path", "")))
        declared = Headers(scope=scope).get("content-length", "")
        received = int(declared) if declared.isascii() and declared.isdigit() else 0  # h11 refuses a bad one

        async def counted() -> Message:
            nonlocal received
            if received > limit:  # declared too long: refused before a byte is read
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request" and not declared:
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)


async def read_form(request: Request) -> FormData:
    """The request's form with small limits: no file parts, at most `FORM_MAX_FIELDS` fields, no
    field longer than the body cap (a bad form is a 400, an oversized one a 413)."""
    return await request.form(max_files=0, max_fields=FORM_MAX_FIELDS, max_part_size=FORM_BODY_LIMIT)
