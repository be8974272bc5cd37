"""Real gateway server processes (uvicorn, ASGI) against the test database, for tests that need
several processes at once. PostgreSQL only: SQLite's test database lives in one process's memory."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("needs PostgreSQL (several server processes share one database)")
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}?pool_max=4"


@contextmanager
def gateway_processes(count: int, *, redis: bool, env: dict | None = None):
    """Start `count` gateway processes; yield their base URLs; stop them."""
    base_env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "SECRET_KEY": settings.SECRET_KEY,
        "DEBUG": "0",
        "PROVIDER_MAX_RETRIES": "0",
        **(env or {}),
    }
    if not redis:
        base_env.pop("REDIS_URL", None)
    elif not base_env.get("REDIS_URL"):
        pytest.skip("needs REDIS_URL")
    processes, urls = [], []
    try:
        for _ in range(count):
            port = free_port()
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "gateway.asgi:application", "--host", "127.0.0.1",
                 "--port", str(port), "--log-level", "warning"],
                cwd=ROOT, env=base_env,
            ))
            urls.append(f"http://127.0.0.1:{port}")
        for url in urls:
            _wait_healthy(url)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_healthy(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"gateway at {url} did not become healthy")
