"""`python -m watcher` and the `trialwatch` script: the command line."""

from __future__ import annotations

import sys

from watcher.daemon import signals

OPTIONS_WITH_VALUE = ("--config", "-c", "--log-format")


def command(argv: list[str]) -> str | None:
    """The subcommand named on a command line (`run` in `trialwatch -c x.toml run`)."""
    words = iter(argv)
    for word in words:
        if word in OPTIONS_WITH_VALUE:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def main() -> None:
    if sys.argv[1:] == ["version"]:  # answered before the command line is imported (a tenth of a second)
        from watcher import __version__

        print(f"trialwatch {__version__}")
        return
    if command(sys.argv[1:]) == "run":
        signals.install()  # before the second of imports below (see watcher.daemon.signals)
    from watcher.cli.operating import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
