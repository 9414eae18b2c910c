"""`python -m watcher` and the `trialwatch` script: the command line."""

from __future__ import annotations

import sys

from watcher import early


def main() -> None:
    if "run" in sys.argv[1:]:
        early.install()  # before the second of imports below (see watcher.early)
    from watcher.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
