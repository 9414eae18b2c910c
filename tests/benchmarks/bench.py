"""Benchmarks (`make bench`): figures, never assertions.

- diff: the real 1.5 MB record (437 sites) against itself and with one site removed;
- the registry cases of issue #14, each the fastest of 3 runs (TRIALWATCH_BENCH_REPEAT), side by
  side with the floor (a plain `requests` client that downloads and JSON-parses the same pages),
  at 1,000 and 3,000 studies built from the real RCC records (renumbered), pages of 500, served
  pre-built from a separate process (tests/benchmarks/registry_server.py). Each `trialwatch`
  command and each floor run is a process of its own: the wall time includes interpreter start
  and imports, the CPU time is also shown less the start-up, and its peak RSS
  comes from wait4 (nothing of the server or of this script is counted):
  - first sync of a new watch;
  - a full reconciliation (`poll --full`) after the registry rewrote every record's
    bookkeeping (versionHolder, last-update dates) and nothing tracked changed;
  - a 1% update cycle (30 of 3,000 studies really changed);
  - three watches whose queries overlap (each study stored once);
- backfilling 200 studies of 20 registry versions each from the version history (issue #22),
  against downloading and parsing the same answers (tests/benchmarks/history.py);
- `trialwatch --help` and `trialwatch version`;
- parsing the real Nature feed (75 items) and keying its items;
- a Crossref window of 5,000 works in 5 pages, polled, parsed and matched against three watches,
  beside a floor that only downloads and JSON-parses the same pages (tests/benchmarks/readouts.py,
  issue #20; `python -m tests.benchmarks.bench readouts` runs it alone).
- 50 readers of /changes, a study page and /api/v1/changes during a first sync of 3,000 studies
  (tests/benchmarks/readers.py): errors, p50/p99/max, against the same readers after the sync.
- a watch's studies (tests/benchmarks/landscape.py): the page over 1,000, the exports of 10,000.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.benchmarks import history, landscape, readers, readouts, timeline
from watcher.registry.diff import diff_records

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(os.environ.get("TRIALWATCH_FIXTURES") or REPO.parent / "shared" / "fixtures")
OWN = REPO / "tests" / "data"
PAGE_SIZE = 500
REPEAT = int(os.environ.get("TRIALWATCH_BENCH_REPEAT", "3"))  # runs of each case; the fastest is shown


def timed(action: Callable[[], object], repeat: int = 5) -> str:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        runs.append(time.perf_counter() - started)
    return f"median {statistics.median(runs) * 1000:.1f} ms over {repeat} runs (min {min(runs) * 1000:.1f} ms)"


def bench_diff() -> None:
    path = FIXTURES / "ctgov" / "study_NCT02513394_with_results_large.json"
    if not path.exists():
        print("diff: real fixtures absent, skipped")
        return
    record = json.loads(path.read_text())
    shorter = copy.deepcopy(record)
    shorter["protocolSection"]["contactsLocationsModule"]["locations"].pop(100)
    print(f"diff 1.5 MB record with itself:        {timed(lambda: diff_records(record, record))}")
    print(f"diff 1.5 MB record, one site removed:  {timed(lambda: diff_records(record, shorter))}")


# --- the registry cases ------------------------------------------------------------------------


def templates() -> list[dict[str, Any]]:
    """Real RCC records (../shared/fixtures/ctgov), or our own small ones when those are absent."""
    real = sorted((FIXTURES / "ctgov").glob("study_NCT*_rcc_*.json")) + sorted(
        (FIXTURES / "ctgov").glob("study_NCT*_kidney_*.json")
    )
    paths = real or sorted(OWN.glob("study_NCT*.json"))
    return [json.loads(path.read_text()) for path in paths]


def studies(count: int) -> list[dict[str, Any]]:
    bases = templates()
    made = []
    for n in range(count):
        record = copy.deepcopy(bases[n % len(bases)])
        record["protocolSection"]["identificationModule"]["nctId"] = f"NCT08{n:06d}"
        record["protocolSection"]["identificationModule"].pop("nctIdAliases", None)
        made.append(record)
    return made


def refreshed(records: list[dict[str, Any]], day: str) -> list[dict[str, Any]]:
    """The registry's daily bookkeeping rewritten in every record; nothing tracked changed."""
    out = []
    for record in records:
        record = copy.deepcopy(record)
        status = record["protocolSection"]["statusModule"]
        status["lastUpdatePostDateStruct"] = {"date": day, "type": "ACTUAL"}
        status["lastUpdateSubmitDate"] = day
        status["statusVerifiedDate"] = day[:7]
        record.setdefault("derivedSection", {}).setdefault("miscInfoModule", {})["versionHolder"] = day
        out.append(record)
    return out


def updated(records: list[dict[str, Any]], day: str) -> list[dict[str, Any]]:
    """1% of the studies really changed (enrollment) and were posted on `day`."""
    out = refreshed(records, (datetime.fromisoformat(day) - timedelta(days=60)).date().isoformat())
    for record in out[::100]:
        design = record["protocolSection"].setdefault("designModule", {})
        enrollment = design.setdefault("enrollmentInfo", {"count": 0})
        enrollment["count"] = int(enrollment.get("count") or 0) + 1
        record["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"] = day
    return out


def write_state(folder: Path, name: str, records: list[dict[str, Any]]) -> None:
    with (folder / f"{name}.jsonl").open("w", encoding="utf-8") as lines:
        for record in records:
            lines.write(json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n")


class Run:
    """One process measured: wall seconds (interpreter start included), CPU seconds (user + system,
    all its threads; waiting for a busy machine is not counted), peak RSS (MB), its stdout."""

    seconds: float
    cpu: float
    rss_mb: float
    stdout: str


def run_child(args: list[str]) -> Run:
    """Run a process to its end; its own rusage comes from wait4 (before Popen could reap it)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(args, stdout=out, stderr=err, text=True, cwd=REPO)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        run = Run()
        run.seconds = time.perf_counter() - started
        run.rss_mb = usage.ru_maxrss / 1024
        run.cpu = usage.ru_utime + usage.ru_stime
        out.seek(0)
        err.seek(0)
        run.stdout = out.read().strip()
        if process.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed ({process.returncode}): {err.read().strip()[-2000:]}")
    return run


def trialwatch(config: Path, *args: str) -> Run:
    return run_child([sys.executable, "-m", "watcher", "--config", str(config), *args])


def floor(base_url: str, since: str | None = None) -> Run:
    """One floor run (the first of a case also warms the server's page cache: see _cases)."""
    return run_child(
        [sys.executable, "-m", "tests.benchmarks.floor", base_url, str(PAGE_SIZE), *([since] if since else [])]
    )


def count_rows(database: Path, table: str) -> int:
    with sqlite3.connect(database) as connection:
        return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608 (our names)


def write_config(folder: Path, base_url: str, watches: int = 1) -> Path:
    text = (
        f'[database]\nurl = "sqlite:///{folder}/tw.db"\n'
        f'[clinicaltrials]\nbase_url = "{base_url}"\nrequests_per_second = 0\npage_size = {PAGE_SIZE}\n'
    )
    for n in range(watches):
        text += f'[[watch]]\nname = "watch {n + 1}"\nterms = ["x{n}"]\nrecipients = ["a@example.org"]\n'
    path = folder / "trialwatch.toml"
    path.write_text(text)
    return path


class Server:
    def __init__(self, folder: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.benchmarks.registry_server", str(folder)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())
        self.base_url = f"http://127.0.0.1:{self.port}/api/v2"

    def serve(self, state: str) -> None:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/_state/{state}", method="POST", data=b"")
        urllib.request.urlopen(request, timeout=600).read()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


POLL_SECONDS = re.compile(r"\(\d+ requests?, ([\d.]+)s\)")


def work(run: Run) -> float:
    """The seconds of the work itself: the floor's own figure, or the poll line's (trialwatch)."""
    found = POLL_SECONDS.findall(run.stdout)
    return sum(float(seconds) for seconds in found) if found else float(run.stdout.split()[0])


def ratio(run: Run, base: Run) -> str:
    """Work and whole-process seconds, each against the floor's."""
    return (
        f"poll {work(run):5.2f} s = {work(run) / work(base):4.2f}x the floor's {work(base):5.2f} s; "
        f"process {run.seconds:5.2f} s = {run.seconds / base.seconds:4.2f}x; peak RSS {run.rss_mb:6.1f} MB"
    )


def make_states(folder: Path, count: int) -> None:
    """The registry's records before, after a bookkeeping refresh, and after a 1% update."""
    today = datetime.now(UTC).date().isoformat()
    base = studies(count)
    write_state(folder, "base", base)
    write_state(folder, "refreshed", refreshed(base, today))
    write_state(folder, "updated", updated(base, today))


def states_in_child(folder: Path, count: int) -> None:
    """Made by a child process: this one stays small, for a child's peak RSS (wait4) starts from
    the RSS of the process that spawned it."""
    subprocess.run([sys.executable, "-m", "tests.benchmarks.bench", "--states", str(folder), str(count)], check=True)


def bench_registry(count: int) -> dict[str, Run]:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        states_in_child(folder, count)
        server = Server(folder)
        try:
            return _cases(folder, server, count)
        finally:
            server.stop()


def _cases(folder: Path, server: Server, count: int) -> dict[str, Run]:
    """Each case REPEAT times from the same database file, floor and trialwatch in turn; the
    fastest of each is shown (the least disturbed by whatever else the machine runs). CPU: the
    least CPU time of the runs, less the start-up (trialwatch: a `poll` that finds the registry
    unchanged, one request; the floor: importing requests)."""
    config, database = write_config(folder, server.base_url), folder / "tw.db"
    trialwatch(config, "db", "upgrade")
    empty = keep(database, folder / "empty.db")
    server.serve("base")
    floor(server.base_url)  # warms the server's pages
    floors, firsts = [floor(server.base_url) for _ in range(REPEAT)], repeated(config, ["poll"], empty)
    synced = keep(database, folder / "synced.db")
    start = least_cpu(repeated(config, ["poll"], synced))  # nothing to fetch: imports, config, database
    floor_start = least_cpu([run_child([sys.executable, "-c", "import json, requests"]) for _ in range(REPEAT)])
    runs = {"floor": fastest(floors), "first sync": fastest(firsts)}
    cpu = {"floor": least_cpu(floors) - floor_start, "first sync": least_cpu(firsts) - start}
    print(f"{count} studies, pages of {PAGE_SIZE}, fastest of {REPEAT}:")
    print(f"  floor (download + parse): {work(runs['floor']):5.2f} s, process {runs['floor'].seconds:5.2f} s, "
          f"CPU {cpu['floor']:5.2f} s, peak RSS {runs['floor'].rss_mb:6.1f} MB")  # fmt: skip
    print(f"  first sync:          {ratio(runs['first sync'], runs['floor'])}")
    server.serve("refreshed")
    versions = count_rows(database, "study_version")
    floor(server.base_url)  # warms the server's pages of the new state
    floors, fulls = [floor(server.base_url) for _ in range(REPEAT)], repeated(config, ["poll", "--full"], synced)
    runs["floor again"], runs["reconciliation"] = fastest(floors), fastest(fulls)
    cpu["floor again"], cpu["reconciliation"] = least_cpu(floors) - floor_start, least_cpu(fulls) - start
    added = count_rows(database, "study_version") - versions
    print(f"  full reconciliation: {ratio(runs['reconciliation'], runs['floor again'])}; {added} new version(s)")
    reconciled = keep(database, folder / "reconciled.db")
    server.serve("updated")
    updates = repeated(config, ["poll"], reconciled)
    runs["update"], cpu["update"] = fastest(updates), least_cpu(updates) - start
    update, first = runs["update"], runs["first sync"]
    print(
        f"  1% update cycle:     poll {work(update):5.2f} s = {work(update) / work(first):.1%} of the first sync's; "
        f"process {update.seconds:5.2f} s = {update.seconds / first.seconds:.1%}; peak RSS {update.rss_mb:6.1f} MB"
    )
    print(
        f"  CPU beyond start-up ({start:.2f} s for trialwatch, {floor_start:.2f} s for the floor): first sync "
        f"{cpu['first sync']:.2f} s = {cpu['first sync'] / cpu['floor']:.2f}x the floor's {cpu['floor']:.2f} s; "
        f"reconciliation {cpu['reconciliation']:.2f} s = {cpu['reconciliation'] / cpu['floor again']:.2f}x "
        f"the floor's {cpu['floor again']:.2f} s; 1% update {cpu['update']:.2f} s = "
        f"{cpu['update'] / cpu['first sync']:.1%} of the first sync's"
    )
    for name in ("first sync", "reconciliation", "update"):
        print(f"    | {runs[name].stdout}")
    return runs


def keep(database: Path, copy: Path) -> Path:
    """A copy of the database as it is now (no trialwatch process has it open)."""
    shutil.copyfile(database, copy)
    return copy


def repeated(config: Path, args: list[str], start: Path) -> list[Run]:
    """REPEAT runs of one command, each on a fresh copy of `start`."""
    runs = []
    for _ in range(REPEAT):
        for leftover in config.parent.glob("tw.db*"):
            leftover.unlink()
        shutil.copyfile(start, config.parent / "tw.db")
        runs.append(trialwatch(config, *args))
    return runs


def fastest(runs: list[Run]) -> Run:
    return min(runs, key=work)


def least_cpu(runs: list[Run]) -> float:
    return min(run.cpu for run in runs)


def bench_overlap(count: int) -> None:
    """Three watches with the same query: each study is stored once (the others link to it)."""
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        states_in_child(folder, count)
        server = Server(folder)
        try:
            server.serve("base")
            config = write_config(folder, server.base_url, watches=3)
            trialwatch(config, "db", "upgrade")
            base = floor(server.base_url)
            run = trialwatch(config, "poll")
            versions = count_rows(folder / "tw.db", "study_version")
        finally:
            server.stop()
    print(f"three overlapping watches of {count} studies, {versions} versions stored:")
    print(f"  {ratio(run, base)} (against one floor)")
    for line in run.stdout.splitlines():
        print(f"  | {line}")


def bench_startup() -> None:
    for args in (["--help"], ["version"]):
        runs = [run_child([sys.executable, "-m", "watcher", *args]).seconds for _ in range(5)]
        print(f"trialwatch {' '.join(args)}: median {statistics.median(runs) * 1000:.0f} ms over 5 runs")


def bench_feed() -> None:
    path = FIXTURES / "feeds" / "nature_rss1_rdf_2024-07-18T0012Z.rss"
    if not path.exists():
        print("feed: real fixtures absent, skipped")
        return
    from watcher.literature.fetch import parse_feed

    body = path.read_bytes()
    print(f"parse + key the Nature feed (75 items, {len(body) / 1e3:.0f} KB): "
          f"{timed(lambda: parse_feed(body=body, url='https://www.nature.com/nature.rss'))}")  # fmt: skip


def main(sizes: list[int]) -> None:
    print(f"trialwatch benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs")
    bench_startup()
    registry = {size: bench_registry(size) for size in sizes}
    if len(registry) > 1:
        small, large = registry[min(registry)]["first sync"], registry[max(registry)]["first sync"]
        print(
            f"first sync peak RSS, {max(registry)} vs {min(registry)} studies: "
            f"{large.rss_mb:.1f} / {small.rss_mb:.1f} MB = {large.rss_mb / small.rss_mb:.2f}x"
        )
    bench_overlap(min(sizes))
    readers.bench_readers(max(sizes))
    history.main(templates(), REPEAT)  # the registry's version history: 200 studies x 20 versions
    bench_diff()  # last: the records it loads would count in every later child's peak RSS
    bench_feed()
    readouts.main(FIXTURES, OWN, REPEAT)  # Crossref: 5,000 works, 3 watches (#20)
    timeline.main(FIXTURES)  # the browser pages over 10,000 studies and 100,000 changes
    landscape.main()  # a watch's studies: the page over 1,000, the exports of 10,000 (#21)


if __name__ == "__main__":
    if sys.argv[1:] == ["timeline"]:  # only the browser pages: python -m tests.benchmarks.bench timeline
        timeline.main(FIXTURES)
    elif sys.argv[1:] == ["readouts"]:  # only Crossref's case: python -m tests.benchmarks.bench readouts
        readouts.main(FIXTURES, OWN, REPEAT)
    elif sys.argv[1:] == ["landscape"]:  # only a watch's studies: python -m tests.benchmarks.bench landscape
        landscape.main()
    elif sys.argv[1:2] == ["--states"]:
        make_states(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        main([int(arg) for arg in sys.argv[1:]] or [1000, 3000])
