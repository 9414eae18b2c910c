"""scheduler.py: the jobs the daemon runs, as APScheduler sees them (built, not started)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.triggers.interval import IntervalTrigger

from tests.harness import write_config
from watcher.cli.shared import make_service
from watcher.config import load_config
from watcher.daemon.scheduler import Runtime, build_scheduler, poll_trigger

NOW = datetime(2026, 11, 21, 10, tzinfo=UTC)


def test_jobs_never_overlap_coalesce_and_always_run_late(tmp_path: Path, registry: Any):
    service = make_service(load_config(write_config(tmp_path, registry)))
    scheduler = build_scheduler(Runtime(service=service, clock=lambda: NOW))
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"poll", "feeds", "digest", "watches"}
    for job in jobs.values():
        assert (job.max_instances, job.coalesce, job.misfire_grace_time) == (1, True, None)
        assert job.next_run_time == NOW  # everything overdue runs at start
    poll = jobs["poll"].trigger
    assert isinstance(poll, IntervalTrigger) and poll.interval == timedelta(hours=6)
    assert jobs["digest"].trigger.interval == timedelta(minutes=1)
    assert jobs["watches"].trigger.interval == timedelta(seconds=30), "a watch edited in the browser, within a minute"


def test_poll_jitter_is_a_few_percent_at_most_two_minutes():
    assert poll_trigger(timedelta(hours=6)).jitter == 120
    assert poll_trigger(timedelta(minutes=20)).jitter == 60
    assert poll_trigger(timedelta(minutes=1)).jitter == 3
