"""SMTP connections whose every step has a deadline: the greeting, each command's answer.

smtplib's `timeout` bounds each read of the socket, so a server that accepts the connection and
then sends its answer a byte a second never trips it: one message could hold the digest run for
as long as the server liked. Here each answer must be complete within `timeout` seconds of being
awaited; past it the connection fails with a TimeoutError naming the step (what we sent last).
Sending is bounded by the socket's own timeout (since Python 3.5 a total for `sendall`).
"""

from __future__ import annotations

import io
import smtplib
import socket
import time
from typing import Any


class StepTimeout(TimeoutError):
    """The server did not complete its answer to a step in time."""


class _AnswerReader(socket.SocketIO):
    """The socket's reading side; never waits past `deadline` (monotonic seconds)."""

    deadline: float | None = None

    def readinto(self, buffer: Any) -> int | None:
        if self.deadline is None:
            return super().readinto(buffer)
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise StepTimeout("answer incomplete at the deadline")
        sock = self._sock  # type: ignore[attr-defined]
        before = sock.gettimeout()
        sock.settimeout(remaining if before is None else min(before, remaining))
        try:
            return super().readinto(buffer)
        except TimeoutError:
            if time.monotonic() >= self.deadline:
                raise StepTimeout("answer incomplete at the deadline") from None
            raise
        finally:
            sock.settimeout(before)


class _StepDeadlines:
    """Mixed into smtplib.SMTP / SMTP_SSL: each reply is read under a deadline; `step` is what was
    awaited when one passed."""

    timeout: float
    sock: Any
    file: Any
    step = "the greeting"
    timed_out: str | None = None  # the step whose answer did not come in time

    def putcmd(self, cmd: str, args: str = "") -> None:
        self.step = cmd.split(" ", 1)[0].upper()
        super().putcmd(cmd, args)  # type: ignore[misc]

    def getreply(self) -> tuple[int, bytes]:
        if self.file is None and self.sock is not None:
            self.sock._io_refs += 1  # as socket.makefile counts the files reading it
            self.file = io.BufferedReader(_AnswerReader(self.sock, "rb"))
        reader = self.file.raw if self.file is not None else None
        if isinstance(reader, _AnswerReader):
            reader.deadline = time.monotonic() + self.timeout
        try:
            return super().getreply()  # type: ignore[misc, no-any-return]
        except smtplib.SMTPServerDisconnected as exc:
            if isinstance(exc.__context__, StepTimeout):
                self.timed_out = self.step
                raise StepTimeout(f"no complete answer to {self.step} within {self.timeout:g}s") from exc
            raise


class DeadlineSMTP(_StepDeadlines, smtplib.SMTP):
    pass


class DeadlineSMTPSSL(_StepDeadlines, smtplib.SMTP_SSL):
    pass
