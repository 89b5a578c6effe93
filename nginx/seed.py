"""Create the deployed stack's experiments through the admin API, once.

Run by the compose ``seed`` service and the Kubernetes ``seed`` Job, from the
router's image, so it uses the standard library only. An experiment that
already exists is left as it is: a marketer may have changed it since, and a
restarted seed must not undo that.

    CROUPIER_ADMIN_TOKEN=... python -m croupier.nginx.seed --admin-url http://router-1:8000 \
        --experiments nginx/compose-experiments.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


class SeedError(RuntimeError):
    pass


def post_experiment(admin_url: str, token: str, experiment: dict) -> int:
    request = urllib.request.Request(
        f"{admin_url.rstrip('/')}/api/v1/experiments", data=json.dumps(experiment).encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        if exc.code in (201, 409):
            return exc.code
        body = exc.read(500).decode(errors="replace")
        if exc.code in (502, 503, 504):  # the router is up but Redis is not yet: try again
            raise ConnectionError(f"HTTP {exc.code}: {body}") from None
        raise SeedError(f"experiment {experiment.get('id')!r}: HTTP {exc.code}: {body}") from None


def seed(admin_url: str, token: str, experiments: list[dict], wait: float) -> list[str]:
    """Lines saying what happened to each experiment; retries until the router answers or ``wait`` passes."""
    deadline = time.monotonic() + wait
    done = []
    for experiment in experiments:
        while True:
            try:
                status = post_experiment(admin_url, token, experiment)
                break
            except (ConnectionError, urllib.error.URLError, TimeoutError, OSError) as exc:
                if time.monotonic() > deadline:
                    raise SeedError(f"{admin_url} did not answer within {wait:.0f} s: {exc}") from None
                time.sleep(1)
        done.append(f"experiment {experiment['id']}: " + ("created" if status == 201 else "exists, left as it is"))
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--admin-url", required=True)
    parser.add_argument("--experiments", type=Path, required=True, help="JSON file: a list of experiments")
    parser.add_argument("--wait", type=float, default=120, help="seconds to wait for the router (default 120)")
    args = parser.parse_args(argv)
    token = os.environ.get("CROUPIER_ADMIN_TOKEN", "")
    if not token:
        print("croupier.nginx.seed: CROUPIER_ADMIN_TOKEN is not set", file=sys.stderr)
        return 2
    try:
        experiments = json.loads(args.experiments.read_text())
        for line in seed(args.admin_url, token, experiments, args.wait):
            print(line, flush=True)
    except (OSError, ValueError, SeedError) as exc:
        print(f"croupier.nginx.seed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
