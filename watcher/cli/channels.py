"""`trialwatch notify-test URL`: one short message to a chat channel or webhook, and what it answered."""

from __future__ import annotations

from typing import Annotated

import typer

from watcher.cli.shared import fail, guarded, out

app = typer.Typer()


@app.command("notify-test")
def notify_test(
    url: Annotated[
        str, typer.Argument(help='An Apprise URL (slack://…, workflows://…, json://host/path) or "${ENV_NAME}".')
    ],
) -> None:
    """Send one short test message to a channel and print what the service answered.

    The URL is checked by Apprise first; `${ENV_NAME}` is read from the environment. Only the
    masked URL is ever printed.

    Example: trialwatch notify-test 'json://127.0.0.1:8000/hook'
    """
    from watcher import channels
    from watcher.mail.channel import ChannelSender, test_message
    from watcher.mail.transport import DeliveryFailed

    def action() -> int:
        try:
            channels.check(url)
        except channels.ChannelUrlError as exc:
            fail(f"notify-test: {exc}")
        shown = channels.masked(url)
        try:
            answer = ChannelSender().send(url, test_message())
        except DeliveryFailed as exc:
            fail(f"{exc.one_line()}")
        out.print(f"sent a test message to {shown}: {answer}", markup=False)
        return 0

    guarded(action)
