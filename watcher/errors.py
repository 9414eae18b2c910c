"""Every error trialwatch raises on purpose is a TrialwatchError with a one-line message.

The message says what went wrong and where (file, watch, key, URL); `hint` says what the user
can do about it. Errors are raised `from` their cause so the traceback (debug logs) keeps it.
"""

from __future__ import annotations


class TrialwatchError(Exception):
    """Base of all trialwatch errors; str(error) is one line fit for the user."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        if hint:
            self.hint = hint

    def one_line(self) -> str:
        text = " ".join(str(self).split())
        return f"{text} ({self.hint})" if self.hint else text


class ConfigError(TrialwatchError):
    """The config file or the environment is wrong."""


class SourceError(TrialwatchError):
    """A source (ClinicalTrials.gov, a feed) could not be polled."""


class NotifyError(TrialwatchError):
    """A message could not be delivered."""


class StoreError(TrialwatchError):
    """The database is missing, unreachable or not migrated."""
