"""The HTML digest at 360 px in headless Chromium, where it is installed: nothing wider than the
screen, the text readable. The screenshot goes to pytest's tmp folder (never into the repo); set
TRIALWATCH_SCREENSHOT=path to keep a copy to look at."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from datetime import UTC, datetime
from html import escape
from pathlib import Path

import pytest

from watcher.mail.digest import SourceProblem, build_digest, render_html
from watcher.model import ChangeKind, ChangeRecord, Source

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt install chromium)")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
]  # fmt: skip
WHEN = datetime(2026, 11, 24, 7, tzinfo=UTC)


def realistic_digest_html() -> str:
    long_title = (
        "A Phase 1/2, Open-label, Multicenter Study of Volrustomig (MEDI5752), a PD-1/CTLA-4 Bispecific "
        "Antibody, in Participants With Advanced Clear Cell Renal Cell Carcinoma After Anti-PD-(L)1 Therapy"
    )
    summaries = [
        (ChangeKind.STATUS, "Status changed from Recruiting to Active, not recruiting."),
        (ChangeKind.DATES, "Primary completion slipped 92 days to 2026-10-31 (estimated)."),
        (ChangeKind.SITES, "Site removed: Asan Medical Center, Seoul, South Korea; https://example.org/" + "x" * 80),
        (ChangeKind.ENROLLMENT, "Enrollment 18 estimated → 8 actual."),
    ]
    changes = [
        ChangeRecord(
            id=i, watch="RCC bispecifics", kind=kind, source=Source.CLINICALTRIALS, nct_id="NCT03530397",
            title=long_title, summary=summary, details={}, detected_at=WHEN,
            study_status="ACTIVE_NOT_RECRUITING", study_phase="Phase 1/Phase 2",
        )
        for i, (kind, summary) in enumerate(summaries, start=1)
    ]  # fmt: skip
    problem = SourceProblem("ClinicalTrials.gov (RCC CAR-T)", "GET https://clinicaltrials.gov/api/v2/" + "y" * 90, WHEN)
    digest = build_digest("onc@example.org", changes, WHEN, ["RCC bispecifics"], problems=[problem])
    return render_html(digest)


def chromium(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [str(CHROMIUM), *FLAGS, f"--user-data-dir={cwd / 'profile'}", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=90, check=False)


def phone_frame(html: str) -> str:
    """The digest in a 360 px wide frame (headless Chromium will not make a window narrower than
    500 px); a script writes the frame document's scroll width into the page once it has loaded."""
    return (
        "<!DOCTYPE html><html><body style='margin:0;background:#888'>"
        "<iframe id='phone' style='width:360px;height:1400px;border:0;background:#fff'"
        f' srcdoc="{escape(html)}"></iframe>'
        "<script>document.getElementById('phone').addEventListener('load', function () {"
        " var doc = this.contentDocument.documentElement;"
        " document.body.setAttribute('data-width', String(doc.scrollWidth)); });</script>"
        "</body></html>"
    )


def test_digest_fits_360_px(tmp_path: Path) -> None:
    page = tmp_path / "phone.html"
    page.write_text(phone_frame(realistic_digest_html()), encoding="utf-8")
    dumped = chromium("--window-size=500,1400", "--virtual-time-budget=5000", "--dump-dom", page.as_uri(), cwd=tmp_path)
    width = re.search(r'data-width="(\d+)"', dumped.stdout)
    assert width, dumped.stderr[-2000:]
    assert int(width.group(1)) <= 360, f"the digest is {width.group(1)} px wide in a 360 px frame"

    shot = tmp_path / "digest-360.png"
    chromium("--window-size=500,1400", f"--screenshot={shot}", page.as_uri(), cwd=tmp_path)
    header = shot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (500, 1400)
    if os.environ.get("TRIALWATCH_SCREENSHOT"):
        shutil.copy(shot, os.environ["TRIALWATCH_SCREENSHOT"])


def test_digest_without_style_support_is_still_styled_inline() -> None:
    html = realistic_digest_html()
    assert "<style" not in html and "stylesheet" not in html  # nothing a client could strip
    assert 'name="viewport" content="width=device-width' in html
