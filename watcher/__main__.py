"""`python -m watcher` and the `trialwatch` script: the command line."""

from __future__ import annotations

import gc
import sys

from watcher.daemon import signals

OPTIONS_WITH_VALUE = ("--config", "-c", "--log-format")

# The cyclic collector's first threshold: Python's default (700 container allocations) runs it
# thousands of times while a registry page (500 studies, about half a million dicts and lists,
# none of them in a cycle) is parsed and digested, and each pass that promotes them makes the
# oldest generation, and every object imported at start, be walked again: a third of a first
# sync's CPU (3,000 studies: 2.0 s -> 1.45 s, issue #14). Cyclic garbage waits a little longer.
GC_THRESHOLD = (50_000, 10, 10)


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
    gc.set_threshold(*GC_THRESHOLD)
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
