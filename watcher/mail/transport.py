"""Email: build_message() apart from the transports that deliver it (SMTP or .eml files)."""

from __future__ import annotations

import errno
import logging
import os
import re
import smtplib
import ssl
import tempfile
from dataclasses import dataclass
from datetime import datetime
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Protocol

from watcher.config import EmailConfig, Secrets
from watcher.errors import NotifyError
from watcher.mail.digest import Digest, render_html, render_text
from watcher.mail.smtp_deadline import DeadlineSMTP, DeadlineSMTPSSL

log = logging.getLogger(__name__)


# CRLF line ends (RFC 5322, also in .eml files); no folding of our <=120-character subjects, which
# CPython's folder would otherwise start on a continuation line ("Subject:\r\n [trialwatch] ...").
MAIL_POLICY = email_policy.SMTP.clone(max_line_length=998)
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})  # no room: disk, file-size limit, quota


class DeliveryFailed(NotifyError):
    """The transport could not deliver; `permanent` says whether retrying can help."""

    def __init__(
        self, message: str, *, permanent: bool = False, storage: bool = False, unreachable: bool = False
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.storage = storage  # our own side failed: the outbox folder cannot be written
        self.unreachable = (
            unreachable  # the server cannot be reached or does not answer: the next messages would not fare better
        )


def build_message(*, digest: Digest, sender: str, message_id: str, date: datetime) -> EmailMessage:
    """A multipart/alternative message (plain text + HTML) for one recipient."""
    message = EmailMessage(policy=MAIL_POLICY)
    message["Subject"] = digest.subject()
    message["From"] = sender
    message["To"] = digest.recipient
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    if digest.links is not None:  # RFC 8058: mail clients POST "List-Unsubscribe=One-Click" to it
        message["List-Unsubscribe"] = f"<{digest.links.unsubscribe}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(render_text(digest))
    message.add_alternative(render_html(digest), subtype="html")
    return message


def new_message_id(sender: str, token: str) -> str:
    """A stable, unique Message-ID built from a token stored with the delivery."""
    domain = sender.rsplit("@", 1)[-1].strip(" >") or "localhost"
    return f"<trialwatch.{token}@{domain}>"


class Transport(Protocol):
    @property
    def description(self) -> str: ...

    def send(self, message: EmailMessage) -> None: ...


@dataclass
class FileTransport:
    """Writes each message atomically as <outbox_dir>/<message-id>.eml."""

    outbox_dir: Path

    @property
    def description(self) -> str:
        return f"outbox folder {self.outbox_dir}"

    def path_for(self, message: EmailMessage) -> Path:
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", str(message["Message-ID"]).strip("<>"))
        return self.outbox_dir / f"{safe}.eml"

    def send(self, message: EmailMessage) -> None:
        target = self.path_for(message)
        try:
            self.outbox_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("wb", dir=self.outbox_dir, suffix=".tmp", delete=False) as tmp:
                tmp.write(message.as_bytes())
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp.name, target)
        except OSError as exc:
            what = "outbox full" if exc.errno in FULL_ERRNOS else "outbox not writable"
            raise DeliveryFailed(f"{what}: {target}: cannot write message: {exc}", storage=True) from exc
        log.debug("wrote %s for %s", target, message["To"])


@dataclass
class SmtpTransport:
    host: str
    port: int
    security: str
    timeout: float
    username: str | None = None
    password: str | None = None
    ssl_context: ssl.SSLContext | None = None  # None: the system's CAs, loaded at the first connection

    @property
    def description(self) -> str:
        return f"SMTP {self.host}:{self.port} ({self.security})"

    def tls_context(self) -> ssl.SSLContext:
        """The context every TLS connection uses; the system's trusted CAs are loaded once, when
        the first message is sent (a thirtieth of a second a command that sends nothing saves)."""
        if self.ssl_context is None:
            self.ssl_context = ssl.create_default_context()
        return self.ssl_context

    def send(self, message: EmailMessage) -> None:
        """Deliver one message. Once the server has answered 250 to the message, nothing that
        happens while closing the connection makes it a failure (that would send it twice)."""
        where = f"SMTP {self.host}:{self.port}"
        try:
            smtp = self._connect()
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(f"{where}: {exc.__class__.__name__}: {exc}", unreachable=True) from exc
        try:
            refused = self._transact(smtp, message, where)
        finally:
            _close_quietly(smtp)
        if refused:
            code, answer = next(iter(refused.values()))
            raise _smtp_failure(where, code, answer)
        log.debug("sent %s to %s via %s", message["Message-ID"], message["To"], where)

    def _transact(self, smtp: smtplib.SMTP, message: EmailMessage, where: str) -> dict[str, tuple[int, bytes]]:
        try:
            if self.username and self.password:
                if self.security == "none":
                    raise DeliveryFailed(f"{where}: refusing to send the password without TLS (security = none)")
                smtp.login(self.username, self.password)
            return smtp.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            # a configuration problem, not the recipient's: keep the message and retry once it is fixed
            raise DeliveryFailed(
                f"{where}: login refused ({exc.smtp_code}): check TRIALWATCH_SMTP_USERNAME and TRIALWATCH_SMTP_PASSWORD"
            ) from exc
        except smtplib.SMTPSenderRefused as exc:
            # the sender address is refused for every recipient: fix [email] sender, then it is retried
            raise DeliveryFailed(
                f"{where} refused the sender {exc.sender} ({exc.smtp_code} {_text(exc.smtp_error)}): "
                "check [email] sender"
            ) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            code, answer = next(iter(exc.recipients.values()))
            raise _smtp_failure(where, code, answer) from exc
        except smtplib.SMTPResponseException as exc:
            raise _smtp_failure(where, exc.smtp_code, exc.smtp_error) from exc
        except (TimeoutError, smtplib.SMTPServerDisconnected) as exc:
            raise DeliveryFailed(f"{where}: {exc.__class__.__name__}: {exc}", unreachable=True) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(f"{where}: {exc.__class__.__name__}: {exc}") from exc

    def _connect(self) -> smtplib.SMTP:
        context = self.tls_context()
        if self.security == "ssl":
            return DeadlineSMTPSSL(self.host, self.port, timeout=self.timeout, context=context)
        smtp = DeadlineSMTP(self.host, self.port, timeout=self.timeout)
        if self.security == "starttls":
            smtp.starttls(context=context)
        return smtp


def _close_quietly(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (TimeoutError, smtplib.SMTPException, OSError):
        smtp.close()


def _text(answer: bytes | str) -> str:
    text = answer.decode(errors="replace") if isinstance(answer, bytes) else str(answer)
    return " ".join(text.split())


def _smtp_failure(where: str, code: int, answer: bytes | str) -> DeliveryFailed:
    return DeliveryFailed(f"{where} answered {code} {_text(answer)}", permanent=500 <= code < 600)


def make_transport(config: EmailConfig, secrets: Secrets) -> Transport:
    """SMTP when smtp_host is set, else .eml files in outbox_dir."""
    if not config.smtp_host:
        return FileTransport(config.outbox_dir)
    password = secrets.smtp_password.get_secret_value() if secrets.smtp_password else None
    return SmtpTransport(
        host=config.smtp_host,
        port=config.smtp_port,
        security=config.security,
        timeout=config.timeout,
        username=secrets.smtp_username,
        password=password,
        ssl_context=_tls_context(config) if config.ca_file else None,
    )


def _tls_context(config: EmailConfig) -> ssl.SSLContext:
    """A context trusting `ca_file` (a private server's certificate), loaded at once: a file that
    cannot be read stops the command before it polls or sends anything."""
    try:
        return ssl.create_default_context(cafile=str(config.ca_file) if config.ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise NotifyError(f"[email] ca_file {config.ca_file}: cannot load certificates: {exc}") from exc
