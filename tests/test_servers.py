"""The test servers themselves behave like the real ones where our code relies on it."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

import pytest
import requests

from tests.servers import Fault


def test_pages_follow_opaque_tokens_and_total_only_on_first_page(registry, own_study):
    for name in ("study_NCT09000001_v1", "study_NCT09000002_v1"):
        registry.put(own_study(name))
    url = f"{registry.base_url}/studies"
    first = requests.get(url, params={"pageSize": "1", "countTotal": "true"}, timeout=5).json()
    assert first["totalCount"] == 2 and len(first["studies"]) == 1
    second = requests.get(url, params={"pageSize": "1", "pageToken": first["nextPageToken"]}, timeout=5).json()
    assert "totalCount" not in second and "nextPageToken" not in second
    changed = requests.get(url, params={"pageSize": "2", "pageToken": first["nextPageToken"]}, timeout=5)
    assert changed.status_code == 400 and changed.headers["Content-Type"].startswith("text/plain")


def test_truncated_fault_breaks_the_body(registry, own_study):
    registry.put(own_study("study_NCT09000001_v1"))
    registry.fail_next(Fault.truncated())
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(f"{registry.base_url}/studies", timeout=5).content  # noqa: B018


def test_smtp_sink_accepts_defers_and_rejects(smtp):
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.org", "b@example.org", "hi"
    message.set_content("body")
    with smtplib.SMTP(smtp.host, smtp.port, timeout=5) as client:
        client.send_message(message)
    assert smtp.wait_for(1)[0].message["Subject"] == "hi"
    smtp.mode = "tempfail"
    with pytest.raises(smtplib.SMTPRecipientsRefused) as info, smtplib.SMTP(smtp.host, smtp.port, timeout=5) as client:
        client.send_message(message)
    assert info.value.recipients["b@example.org"][0] == 451
