"""`python -m watcher` runs the trialwatch command."""

from watcher.cli import main

main()
