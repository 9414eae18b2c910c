"""trialwatch: watch ClinicalTrials.gov and journal feeds, email what really changed."""

__version__ = "0.1.0"
