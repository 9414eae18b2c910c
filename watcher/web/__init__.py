"""The web app (ASGI, Starlette): pages, the JSON API beside them, templates/ and static/.

May import: daemon, service and everything below. Never cli.

`watcher.web.app.create_app(WebContext(engine=..., config=...))` builds the app; the daemon adds
/healthz and /metrics through `extra_routes`. Nothing connects to the database at import or at
`create_app`: the first request that needs it does, and an unreachable database answers 503.

Adding a page group (say, a changes timeline):

1. Write `watcher/web/routes_changes.py` with `routes: list[BaseRoute] = [Route("/changes", page)]`.
   A page is an `async def page(request) -> Response`:
       user = await require_user(request)          # 303 to /login without a session (401 under /api)
       rows = await in_db(request, lambda session: changes_query(session=session, ...))
       return render(request, "changes.html", {"rows": rows})
   (`require_api_user` for JSON under /api/v1: bearer token; `require_admin(user)` for admin-only;
   `await form_of(request)` reads a POSTed form and checks its CSRF token, 403 without one;
   templates get `csrf_field()`; database queries go in watcher/store as keyword-only functions.)
2. Add `routes_changes.routes` to `ROUTE_GROUPS` in watcher/web/app.py (one line).
3. Templates extend "base.html" (block `title` and `content`); put a nav link in base.html.
   Everything is autoescaped; never mark user, registry or feed text safe. No inline script or
   style (the CSP forbids both): JavaScript goes in static/*.js, loaded with a <script src>.
4. Test it over HTTP with tests/web_support.py (the `web_server` fixture: a real uvicorn over a
   fresh database, both kinds; `.signed_in(email)`, `.token(email)`, `.submit(page, data)`) and,
   for what a person does in the page, in the browser (`browser`, `signed_in_browser`;
   `browser.screenshot(name)` also fails when the page is wider than 1280 or 360 px).
   tests/test_web_auth.py checks that every route needs a session (or a token under /api): a page
   meant to be public (an unsubscribe link) goes in its `PUBLIC` set, on purpose.
"""
