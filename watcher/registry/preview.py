"""`trialwatch preview`, the registry part: what a watch would match right now, and why; stores
nothing. The watch's own queries with pageSize 20 and countTotal, so the user sees the total, the
first twenty studies with status and phase, and the exact request. (The feeds part is
watcher.literature.preview.)
"""

from __future__ import annotations

from collections.abc import Iterator

from watcher.config import WatchConfig
from watcher.matching import why_study_matches
from watcher.model import Study
from watcher.registry.client import CtgovClient

SHOWN = 20


def registry_lines(client: CtgovClient, watch: WatchConfig) -> Iterator[str]:
    for url, page in client.preview(watch, limit=SHOWN):
        total = page.total if page.total is not None else len(page.studies)
        yield f"{total} studies match: GET {url}"
        for record in page.studies:
            study = Study.from_record(record)
            yield f"  {study.nct_id}  {study.status_label} · {study.phase_label} · {study.title}"
            why = why_study_matches(record, study.nct_id, watch)
            if why:
                yield f"      matched {why}"
        if total > len(page.studies):
            yield f"  … and {total - len(page.studies)} more"
