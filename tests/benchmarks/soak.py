"""`make soak`: the daemon's jobs for N simulated days against the local registry (default 30
days of 3,000 studies; `make soak SOAK_DAYS=10` is CI's). Figures, and a verdict.

Each simulated day, 1% of the studies really change (their overall status, posted that day); the
daemon process polls the registry and sends the daily digest at 08:00 of that day, its clock
moved a day at a time, so thirty days take minutes. The daemon is one long-lived process (the
real poll, watches and digest jobs, as the scheduler calls them, with /healthz's monitor), apart
from the registry (tests/benchmarks/registry_server.py) and from this script, which judges. One
line per day: RSS, open file descriptors, threads, the database's used bytes, changes stored,
mails sent. It fails (exit 1) when
- RSS, descriptors or threads keep growing: the last third of the days' mean more than 10% above
  the first third's, counted from the first full reconciliation (day 7, [clinicaltrials]
  full_every): it downloads every study, and sets the high-water mark of RSS that the allocator
  keeps (the raw ratio from day 1 is printed too);
- a change of the day is missing from that day's mail, or a study's change is mailed twice;
- the database grows faster than the changes it stores: its growth per stored change in the last
  third more than 10% above the first third's.
Usage: python -m tests.benchmarks.soak [DAYS] [STUDIES]
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.benchmarks.bench import REPO, Server, studies, write_state
from watcher.config import ClinicalTrialsConfig

START = datetime(2026, 12, 1, 8, tzinfo=UTC)
SHARE = 100  # 1 in SHARE studies changes each day
TOLERANCE = 1.10
FULL_EVERY = ClinicalTrialsConfig().full_every.days  # the day of the first full reconciliation
NCT = re.compile(r"\b(NCT\d{8}) · ")  # a study's line in the digest's text part


def day_states(folder: Path, days: int, count: int) -> None:
    """base.jsonl, then dayK.jsonl: the 1% of the studies that change on day K (a new status)."""
    base = studies(count)
    write_state(folder, "base", base)
    per_day = max(count // SHARE, 1)
    for day in range(1, days + 1):
        changed = []
        for index in range(per_day):
            record = copy.deepcopy(base[((day - 1) * per_day + index) % count])
            status = record["protocolSection"]["statusModule"]
            status["overallStatus"] = "SUSPENDED" if status.get("overallStatus") != "SUSPENDED" else "RECRUITING"
            status["lastUpdatePostDateStruct"] = {"date": (START + timedelta(days=day)).date().isoformat()}
            changed.append(record)
        write_state(folder, f"day{day}", changed)


# --- the daemon side (a child process) ----------------------------------------------------------


def daemon(folder: Path, days: int, port: int) -> None:
    """The daemon's jobs, a simulated day at a time; one JSON line per day on stdout."""
    import logging
    import threading
    import urllib.request

    from sqlmodel import func, select

    from watcher.cli.shared import make_service
    from watcher.config import load_config
    from watcher.daemon.health import Metrics, Monitor
    from watcher.daemon.jobs import digest_job, poll_job, watches_job
    from watcher.daemon.scheduler import Runtime
    from watcher.store import db
    from watcher.store.models import ChangeRow

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="daemon: %(levelname)s %(message)s")
    clock = [START]
    service = make_service(load_config(folder / "trialwatch.toml"), watches="provisioned")  # as `run` starts
    monitor = Monitor(metrics=Metrics(), poll_interval=timedelta(days=1), started_at=START)
    runtime = Runtime(service=service, clock=lambda: clock[0], monitor=monitor)
    outbox, seen = folder / "outbox", set[str]()
    for day in range(days + 1):
        clock[0] = START + timedelta(days=day)
        if day:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/_update/day{day}", method="POST", data=b"")
            urllib.request.urlopen(request, timeout=600).read()
        watches_job(runtime)
        poll_job(runtime)
        digest_job(runtime)
        new = sorted(set(os.listdir(outbox)) - seen) if outbox.exists() else []
        seen.update(new)
        with db.transaction(service.engine) as session:
            changes = session.exec(select(func.count()).select_from(ChangeRow)).one()
            used = (
                session.connection()
                .exec_driver_sql(
                    "SELECT (page_count - freelist_count) * page_size"
                    " FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()"
                )
                .scalar_one()
            )
        mailed = [nct for name in new for nct in NCT.findall(_text_of(outbox / name))]
        print(json.dumps({
            "day": day, "rss_mb": _rss_mb(), "fds": len(os.listdir("/proc/self/fd")),
            "threads": threading.active_count(), "db_bytes": used, "changes": changes, "mails": len(new),
            "mailed": mailed, "health": monitor.status(now=clock[0]).as_json()["status"],
        }), flush=True)  # fmt: skip


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _text_of(path: Path) -> str:
    from email import message_from_bytes
    from email import policy as email_policy

    message = message_from_bytes(path.read_bytes(), policy=email_policy.default)
    parts = [part.get_content() for part in message.walk() if part.get_content_type() == "text/plain"]
    return "".join(str(part) for part in parts)


# --- the judge ----------------------------------------------------------------------------------


def expected(folder: Path, day: int) -> set[str]:
    with (folder / f"day{day}.jsonl").open() as lines:
        return {json.loads(line)["protocolSection"]["identificationModule"]["nctId"] for line in lines}


def third_ratio(values: list[float]) -> float:
    third = max(len(values) // 3, 1)
    first, last = values[:third], values[-third:]
    return (sum(last) / len(last)) / max(sum(first) / len(first), 1e-9)


def judge(folder: Path, days: list[dict[str, Any]]) -> list[str]:
    failures, mailed_before = [], set[str]()
    for row in days[1:]:
        mailed, want = row["mailed"], expected(folder, row["day"])
        if set(mailed) != want or len(mailed) != len(set(mailed)):
            missing, twice = len(want - set(mailed)), len(mailed) - len(set(mailed))
            failures.append(f"day {row['day']}: mailed {len(set(mailed))} of {len(want)} changed studies"
                            f" ({missing} missing, {twice} twice)")  # fmt: skip
        if again := set(mailed) & mailed_before:
            failures.append(f"day {row['day']}: {len(again)} studies mailed again, e.g. {sorted(again)[0]}")
        mailed_before |= set(mailed)
    steady = days[1:]  # day 0 is the first sync
    warm = [row for row in days if row["day"] >= FULL_EVERY] or steady
    for key in ("rss_mb", "fds", "threads"):
        grown = third_ratio([float(row[key]) for row in warm])
        raw = third_ratio([float(row[key]) for row in steady])
        print(f"{key}: last third / first third = {grown:.3f} from day {warm[0]['day']} ({raw:.3f} from day 1)")
        if grown > TOLERANCE:
            failures.append(f"{key} keeps growing: the last third's mean is {grown:.2f}x the first third's")
    growth = [
        (now["db_bytes"] - before["db_bytes"]) / max(now["changes"] - before["changes"], 1)
        for before, now in zip(steady, steady[1:], strict=False)
    ]
    per_change = third_ratio(growth)
    print(f"database bytes per stored change: last third / first third = {per_change:.3f}")
    if per_change > TOLERANCE:
        failures.append(f"the database grows {per_change:.2f}x faster per stored change in the last third")
    return failures


def main(days: int, count: int) -> int:
    print(f"trialwatch soak, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {days} days, {count} studies, "
          f"{max(count // SHARE, 1)} change a day")  # fmt: skip
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        day_states(folder, days, count)
        (folder / "trialwatch.toml").write_text(
            f'[database]\nurl = "sqlite:///{folder}/tw.db"\n[clinicaltrials]\nbase_url = "BASE"\n'
            "requests_per_second = 0\npage_size = 500\n"
            f'[email]\noutbox_dir = "{folder}/outbox"\n'
            '[[watch]]\nname = "soak"\nterms = ["x"]\nrecipients = ["a@example.org"]\ndigest = "daily"\n'
        )
        server = Server(folder)
        try:
            server.serve("base")
            config = folder / "trialwatch.toml"
            config.write_text(config.read_text().replace("BASE", server.base_url))
            rows = run_daemon(folder, days, server.port)
        finally:
            server.stop()
        failures = judge(folder, rows)
    for failure in failures:
        print(f"FAIL: {failure}")
    print("soak: OK" if not failures else f"soak: {len(failures)} failure(s)")
    return 1 if failures else 0


def run_daemon(folder: Path, days: int, port: int) -> list[dict[str, Any]]:
    command = [sys.executable, "-m", "tests.benchmarks.soak", "--daemon", str(folder), str(days), str(port)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert process.stdout is not None
    rows = []
    for line in process.stdout:
        row = json.loads(line)
        rows.append(row)
        print(f"day {row['day']:3d}: RSS {row['rss_mb']:6.1f} MB, {row['fds']:3d} fds, {row['threads']:2d} threads, "
              f"db {row['db_bytes'] / 1e6:7.2f} MB, {row['changes']:5d} changes, {row['mails']} mail(s), "
              f"health {row['health']}", flush=True)  # fmt: skip
    if process.wait() != 0:
        raise SystemExit(f"the daemon process failed ({process.returncode})")
    return rows


if __name__ == "__main__":
    if sys.argv[1:2] == ["--daemon"]:
        daemon(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        arguments = [int(arg) for arg in sys.argv[1:]]
        sys.exit(main(*(arguments + [30, 3000][len(arguments) :])))
