"""Real servers on loopback for the tests: a registry that answers like ClinicalTrials.gov API v2
(pytest-httpserver) and an SMTP server (aiosmtpd) that accepts, defers or rejects on demand."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import socket
import ssl
import subprocess
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.registry_filters import filter_checks

API = "/api/v2"
INTERNAL = "/api/int"  # the site's internal API: the version history (registry/version_history.py)


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour, consumed by one request."""

    kind: str
    code: int = 200
    body: str = ""
    retry_after: str | None = None

    @classmethod
    def none(cls) -> Fault:
        """Answer this request normally (to fail a later one)."""
        return cls("none")

    @classmethod
    def status(cls, code: int, body: str = "", retry_after: str | None = None) -> Fault:
        """Answer with this HTTP status and a plain-text body (optionally Retry-After)."""
        return cls("status", code=code, body=body, retry_after=retry_after)

    @classmethod
    def truncated(cls) -> Fault:
        """The real answer's headers, Content-Length of the whole body, half the body, then close."""
        return cls("truncated")

    @classmethod
    def html_404(cls) -> Fault:
        return cls("html_404", code=404)

    @classmethod
    def garbled(cls, token: str | None = None) -> Fault:
        """The real answer with a byte in its middle broken (its first and last bytes intact, so it
        still looks like a whole page); `token`: its nextPageToken replaced by this one as well."""
        return cls("garbled", body=token or "")


class FakeRegistry:
    """An in-memory ClinicalTrials.gov API v2: /version, /studies (paged), /studies/{nctId}."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.studies: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.data_timestamp = "2026-11-24T09:00:04"
        self.refreshes = 0
        self.exact_full_page_token = False
        self.scripted_pages: list[dict[str, Any]] = []
        self.requests_log: list[tuple[str, dict[str, str]]] = []
        self.request_times: list[float] = []  # time.monotonic() as each request arrived (pacing checks)
        # the version history: per study, its listed entries and each version's record
        self.histories: dict[str, list[dict[str, Any]]] = {}
        self.history_records: dict[tuple[str, int], dict[str, Any]] = {}
        self._faults: list[Fault] = []
        self._history_faults: list[Fault] = []
        self._lock = threading.Lock()
        self._gate: threading.Event | None = None
        self._held = threading.Condition()
        self.held_requests = 0
        server.expect_request(re.compile(r".*")).respond_with_handler(self._handle)

    @property
    def base_url(self) -> str:
        return self.server.url_for(API).rstrip("/")

    def put(self, record: dict[str, Any]) -> None:
        nct_id = record["protocolSection"]["identificationModule"]["nctId"]
        with self._lock:
            self.studies[nct_id] = json.loads(json.dumps(record))
            self._refresh()

    def remove(self, nct_id: str) -> None:
        with self._lock:
            self.studies.pop(nct_id, None)
            self._refresh()

    def _refresh(self) -> None:
        """Like the registry's daily data refresh: /version's dataTimestamp moves."""
        self.refreshes += 1
        self.data_timestamp = f"2026-11-24T09:{self.refreshes // 60:02d}:{self.refreshes % 60:02d}"

    def script_pages(self, *bodies: dict[str, Any]) -> None:
        """Serve these /studies bodies verbatim: the first to a request without pageToken, each next
        one to the request that sends the previous body's own nextPageToken (real tokens, opaque)."""
        with self._lock:
            self.scripted_pages = [json.loads(json.dumps(body)) for body in bodies]
            self._refresh()

    def put_history(self, nct_id: str, entries: list[dict[str, Any]], records: dict[int, dict[str, Any]]) -> None:
        """Serve this version list (`history.changes` entries, verbatim) and these versions' records."""
        with self._lock:
            self.histories[nct_id] = json.loads(json.dumps(entries))
            for number, record in records.items():
                self.history_records[(nct_id, number)] = json.loads(json.dumps(record))

    def load_history(self, folder: Path, *, current: bool = True) -> str:
        """A fixture study of registry-history/ (history.json, v{N}.json) served as its history;
        with `current`, its newest version is also the study API v2 serves. Returns its id."""
        listing = json.loads((folder / "history.json").read_text(encoding="utf-8"))
        entries = listing["history"]["changes"]
        records = {}
        for entry in entries:
            path = folder / f"v{entry['version']}.json"
            if path.is_file():
                records[entry["version"]] = json.loads(path.read_text(encoding="utf-8"))["study"]
        self.put_history(folder.name, entries, records)
        if current:
            self.put(records[max(records)])
        return folder.name

    def add_version(self, record: dict[str, Any], day: str | None = None) -> int:
        """A new registry version of a study: listed in its history and served as the current record."""
        nct_id = record["protocolSection"]["identificationModule"]["nctId"]
        status = record["protocolSection"].get("statusModule") or {}
        day = day or status.get("lastUpdateSubmitDate") or "2026-11-20"
        with self._lock:
            entries = self.histories.setdefault(nct_id, [])
            number = max((e["version"] for e in entries), default=-1) + 1
            entries.append({"version": number, "date": day, "status": status.get("overallStatus", ""),
                            "moduleLabels": []})  # fmt: skip
            self.history_records[(nct_id, number)] = json.loads(json.dumps(record))
        self.put(record)
        return number

    def fail_history(self, *faults: Fault) -> None:
        """Faults for the next requests of the version history (the API v2 requests unaffected)."""
        with self._lock:
            self._history_faults.extend(faults)

    def fail_next(self, *faults: Fault) -> None:
        with self._lock:
            self._faults.extend(faults)

    def hold(self) -> None:
        """Keep each next request waiting (the server answers one at a time: the others queue)
        until `release()`; at most 60 s, so a test that forgets cannot hang."""
        self._gate = threading.Event()

    def wait_until_held(self, count: int = 1, timeout: float = 30.0) -> None:
        with self._held:
            assert self._held.wait_for(lambda: self.held_requests >= count, timeout), "no request came"

    def release(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.set()

    def request_count(self, path_suffix: str | None = None) -> int:
        return sum(1 for path, _ in self.requests_log if path_suffix is None or path.endswith(path_suffix))

    # --- handling ---------------------------------------------------------------------------

    def _handle(self, request: Request) -> Response:
        params = dict(request.args.items())
        with self._lock:
            self.requests_log.append((request.path, params))
            self.request_times.append(time.monotonic())
            history = request.path.startswith(INTERNAL)
            fault = self._history_faults.pop(0) if history and self._history_faults else None
            fault = fault or (self._faults.pop(0) if self._faults else None)
        gate = self._gate
        if gate is not None:
            with self._held:
                self.held_requests += 1
                self._held.notify_all()
            gate.wait(60)
        if fault is not None and fault.kind != "none":
            return self._faulty(fault, request)
        return self._answer(request.path, params)

    def _answer(self, path: str, params: dict[str, str]) -> Response:
        if path == f"{API}/version":
            return _json({"apiVersion": "2.0.5", "dataTimestamp": self.data_timestamp})
        if path == f"{API}/studies":
            return self._search(params)
        match = re.fullmatch(rf"{API}/studies/(NCT\d{{8}})", path)
        if match:
            record = self.studies.get(match.group(1))
            return _json(record) if record else _text(404, f"Study {match.group(1)} not found")
        if path.startswith(INTERNAL):
            return self._history(path, params)
        return _html_404()

    def _history(self, path: str, params: dict[str, str]) -> Response:
        listing = re.fullmatch(rf"{INTERNAL}/studies/(NCT\d{{8}})", path)
        if listing and params.get("history") == "true" and listing.group(1) in self.histories:
            nct_id = listing.group(1)
            return _json({"study": self.studies.get(nct_id), "history": {"changes": self.histories[nct_id]}})
        one = re.fullmatch(rf"{INTERNAL}/studies/(NCT\d{{8}})/history/(\d+)", path)
        record = self.history_records.get((one.group(1), int(one.group(2)))) if one else None
        if one and record is not None:
            return _json({"studyVersion": int(one.group(2)), "study": record})
        return _text(404, "Not found")

    def _search(self, params: dict[str, str]) -> Response:
        if self.scripted_pages:
            return self._scripted(params)
        checks = filter_checks(params)
        if isinstance(checks, str):
            return _text(400, checks)
        size = min(int(params.get("pageSize", "10")), 1000)
        query = {k: v for k, v in params.items() if k not in ("pageToken", "countTotal")}
        offset = 0
        if "pageToken" in params:
            decoded = _decode_token(params["pageToken"])
            if decoded is None or decoded[1] != _query_key(query):
                return _text(400, "Invalid pageToken: it does not match the query parameters")
            offset = decoded[0]
        with self._lock:
            matching = [record for record in self._matching(params) if all(check(record) for check in checks)]
        page = matching[offset : offset + size]
        body: dict[str, Any] = {}  # in the registry's order: totalCount, studies, nextPageToken
        if params.get("countTotal") == "true" and "pageToken" not in params:
            body["totalCount"] = len(matching)
        body["studies"] = page
        end = offset + len(page)
        if end < len(matching) or (self.exact_full_page_token and page and len(page) == size):
            body["nextPageToken"] = _encode_token(end, _query_key(query))
        return _json(body)

    def _scripted(self, params: dict[str, str]) -> Response:
        token = params.get("pageToken")
        if token is None:
            return _json(self.scripted_pages[0])
        for previous, body in zip(self.scripted_pages, self.scripted_pages[1:], strict=False):
            if previous.get("nextPageToken") == token:
                return _json(body)
        return _text(400, f"Invalid pageToken {token}")

    def _matching(self, params: dict[str, str]) -> list[dict[str, Any]]:
        if "filter.ids" in params:
            ids = [i.strip() for i in params["filter.ids"].split(",")]
            found = [self.studies[i] for i in ids if i in self.studies]
        else:
            found = list(self.studies.values())
        return found

    def _faulty(self, fault: Fault, request: Request) -> Response:
        if fault.kind == "html_404":
            return _html_404()
        if fault.kind == "truncated":
            return _truncated(self._answer(request.path, dict(request.args.items())))
        if fault.kind == "garbled":
            return _garbled(self._answer(request.path, dict(request.args.items())), fault.body)
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
        default = {429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}
        return Response(
            fault.body or default.get(fault.code, "error"),
            status=fault.code,
            headers=headers,
            content_type="text/plain",
        )


def _query_key(query: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(sorted(query.items())).encode()).decode()[-12:]


def _encode_token(offset: int, key: str) -> str:
    return base64.urlsafe_b64encode(f"{offset}:{key}".encode()).decode().rstrip("=")


def _decode_token(token: str) -> tuple[int, str] | None:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        offset, key = raw.split(":", 1)
        return int(offset), key
    except (ValueError, UnicodeDecodeError):
        return None


def _json(body: Any) -> Response:
    return Response(json.dumps(body), status=200, content_type="application/json")


def _text(status: int, body: str) -> Response:
    return Response(body, status=status, content_type="text/plain")


def _html_404() -> Response:
    return Response(
        "<!DOCTYPE html><html><body><h1>404 Not Found</h1></body></html>", status=404, content_type="text/html"
    )


def _garbled(full: Response, token: str) -> Response:
    body = full.get_data()
    middle = body.index(b'":', len(body) // 2)
    body = body[:middle] + b"#" + body[middle + 1 :]  # a key's closing quote broken: no longer JSON
    if token:
        body = re.sub(rb'"nextPageToken": "[^"]*"', f'"nextPageToken": "{token}"'.encode(), body)
    return Response(body, status=full.status_code, content_type=full.content_type)


def _truncated(full: Response) -> Response:
    """Announce the whole body's length, send half of it, then break the connection."""
    body = full.get_data()

    def half_then_break() -> Any:
        yield body[: len(body) // 2]
        raise ConnectionAbortedError("test fault: connection cut mid-body")

    response = Response(
        half_then_break(), status=full.status_code, content_type=full.content_type, direct_passthrough=True
    )
    response.headers["Content-Length"] = str(len(body))
    return response


# --- SMTP -------------------------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool = False
    login: str | None = None
    message: EmailMessage = field(init=False)

    def __post_init__(self) -> None:
        self.message = message_from_bytes(self.data, policy=email_policy.default)  # type: ignore[assignment]


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_MAIL(  # noqa: N802
        self, server: SMTPServer, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.sink.mode == "reject_sender":
            return "550 5.7.1 Sender address rejected: not owned by user"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_QUIT(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:  # noqa: N802
        if self.sink.mode == "drop_at_quit" and server.transport is not None:
            server.transport.abort()  # the client hears nothing after its message was accepted
        return "221 Bye"

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTPServer, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.sink.mode == "tempfail":
            return "451 4.3.0 Try again later"
        if self.sink.mode == "reject" and address.lower() in self.sink.reject_recipients:
            return f"550 5.1.1 <{address}>: Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:  # noqa: N802
        data = envelope.original_content or (envelope.content if isinstance(envelope.content, bytes) else b"")
        login = session.auth_data if isinstance(session.auth_data, str) else None
        received = Received(
            str(envelope.mail_from),
            list(envelope.rcpt_tos),
            bytes(data),
            tls=session.ssl is not None or self.sink.implicit_tls,
            login=login,
        )
        with self.sink._arrived:
            self.sink.in_data += 1
            self.sink._arrived.notify_all()
        if self.sink.mode == "tempfail_data":
            self.sink.attempted.append(received)
            return "451 4.3.0 Try again later"
        self.sink.deliver(received)
        if self.sink.mode == "hold":  # queued, like a real server; the client waits for the 250 until released
            await asyncio.get_running_loop().run_in_executor(None, self.sink.release.wait, 30)
        return "250 Message accepted for delivery"


logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every connection at INFO
logging.getLogger("werkzeug").setLevel(logging.WARNING)  # and the HTTP test servers every request


class SmtpSink:
    """A real SMTP server on 127.0.0.1 that records what it accepts. With `tls` (a certificate and
    key file) it offers and requires STARTTLS; with `credentials` it requires AUTH (over TLS)."""

    def __init__(
        self,
        *,
        tls: tuple[Path, Path] | None = None,
        implicit_tls: bool = False,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        # accept | tempfail (at RCPT) | tempfail_data (after DATA) | reject (listed recipients) |
        # reject_sender (at MAIL) | hold (queue, delay the 250) | drop_at_quit (accept, then cut at QUIT)
        self.mode = "accept"
        self.release = threading.Event()  # ends a "hold"
        self.in_data = 0  # messages whose DATA arrived
        self.attempted: list[Received] = []  # messages answered 451 after DATA
        self.reject_recipients: set[str] = set()
        self.received: list[Received] = []
        self._arrived = threading.Condition()
        self.host = "127.0.0.1"
        self.port = _free_port()
        self.logins: list[tuple[str, bool]] = []  # (user name, accepted)
        self.implicit_tls = implicit_tls
        options: dict[str, Any] = {}
        if tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            if implicit_tls:  # aiosmtpd cannot tell an implicit-TLS session is encrypted: allow AUTH on it
                options.update(ssl_context=context, auth_require_tls=False)
            else:
                options.update(tls_context=context, require_starttls=True)
        if credentials:
            options.update(auth_required=True, authenticator=self._authenticator(credentials))
        self.controller = Controller(_Handler(self), hostname=self.host, port=self.port, **options)

    def _authenticator(self, credentials: tuple[str, str]) -> Any:
        def check(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
            user = auth_data.login.decode() if isinstance(auth_data, LoginPassword) else ""
            ok = isinstance(auth_data, LoginPassword) and (user, auth_data.password.decode()) == credentials
            self.logins.append((user, ok))
            return AuthResult(success=ok, handled=False, auth_data=user if ok else None)

        return check

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    def deliver(self, received: Received) -> None:
        with self._arrived:
            self.received.append(received)
            self._arrived.notify_all()

    def wait_for_data(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until `count` messages reached DATA (accepted or not); False at the deadline."""
        with self._arrived:
            return self._arrived.wait_for(lambda: self.in_data >= count, timeout=timeout)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.received) >= count, timeout=timeout):
                raise AssertionError(f"expected {count} message(s), got {len(self.received)} in {timeout}s")
            return list(self.received)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, made now with openssl (valid one day)."""
    cert, key = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key
