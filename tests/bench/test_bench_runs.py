"""The benchmark script still runs: a tiny load (about 20 s in all) against the fake vendor and
the gateway, on PostgreSQL (database gateway_bench, never the test suite's) and Redis db 14.

Speed targets live in the benchmark (docs/performance.md), not here: this only checks that every
piece starts, answers without errors, and reports what the table needs.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATABASE_URL = os.environ.get("DATABASE_URL", "")

pytestmark = pytest.mark.skipif(
    urlsplit(DATABASE_URL).scheme not in {"postgres", "postgresql", "pgsql"},
    reason="the benchmark runs on PostgreSQL (set DATABASE_URL)",
)


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def test_the_benchmark_runs(tmp_path):
    # The same server as the suite, another database: the suite's test database stays untouched.
    database = _with_path(DATABASE_URL, "/gateway_bench")
    redis = _with_path(os.environ["REDIS_URL"], "/14") if os.environ.get("REDIS_URL") else ""
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--quick",
            "--no-peer",
            "--scenarios",
            "1,3-sse,4",
            "--duration",
            "2",
            "--warmup",
            "1",
            "--concurrency",
            "2",
            "--streams",
            "8",
            "--slow-tokens",
            "10",
            "--dialogs-per-run",
            "50",
            "--pause",
            "0",
            "--database-url",
            database,
            "--redis-url",
            redis,
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "req/s" in proc.stdout  # the table was printed

    runs = json.loads(out.read_text())["runs"]
    seen = {(r["scenario"], r["target"]) for r in runs}
    assert seen == {(key, target) for key in ("1-c1", "1-c2", "3-sse", "4-burst") for target in ("direct", "gateway")}
    for run in runs:
        assert run["ok"] > 0 and run["errors"] == 0, run
        assert run["latency_ms"]["p50"] > 0
        assert run["peak_rss_mib"] > 0
    gateway = [r for r in runs if r["target"] == "gateway"]
    assert all(r["queries_per_request"] > 0 for r in gateway)  # every request reserves and settles
    assert all(r["first_token_ms"]["p50"] is not None for r in runs if r["stream"])
    burst = next(r for r in gateway if r["scenario"] == "4-burst")
    assert burst["ok"] == 8
