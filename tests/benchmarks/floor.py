"""The floor for `make bench`: a plain `requests` client that downloads and JSON-parses every
page of one query, and does nothing else. Prints the seconds spent (after its imports).

Usage: python -m tests.benchmarks.floor BASE_URL PAGE_SIZE [SINCE]
"""

from __future__ import annotations

import json
import sys
import time

import requests


def main() -> None:
    base_url, size = sys.argv[1], sys.argv[2]
    params = {"query.term": '"x"', "pageSize": size, "format": "json", "countTotal": "true"}
    if len(sys.argv) > 3:
        params["filter.advanced"] = f"AREA[LastUpdatePostDate]RANGE[{sys.argv[3]},MAX]"
    started = time.perf_counter()
    studies = 0
    with requests.Session() as session:
        session.get(f"{base_url}/version", timeout=60).raise_for_status()
        while True:
            response = session.get(f"{base_url}/studies", params=params, timeout=60)
            response.raise_for_status()
            body = json.loads(response.content)
            studies += len(body["studies"])
            token = body.get("nextPageToken")
            if not token or not body["studies"]:
                break
            params.pop("countTotal", None)
            params["pageToken"] = token
    print(f"{time.perf_counter() - started:.3f} {studies}")


if __name__ == "__main__":
    main()
