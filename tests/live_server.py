"""Real gateway servers (uvicorn, ASGI) against the test database.

- `gateway_processes`: several server processes at once (PostgreSQL only: SQLite's test
  database lives in one process's memory).
- `make_serve`: the production server as `make serve` starts it, on a database of its own.
- `gateway_url` fixture: one server in a thread of the test process, on SQLite or PostgreSQL,
  for driving the gateway over HTTP with the vendors' own SDKs."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, connections

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
    with gateway_process_pool(count, redis=redis, env=env) as pool:
        yield [url for _, url in pool]


@contextmanager
def gateway_process_pool(
    count: int, *, redis: bool, env: dict | None = None
) -> Iterator[list[tuple[subprocess.Popen, str]]]:
    """gateway_processes, yielding each process with its base URL (to signal or kill it)."""
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
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "gateway.asgi:application",
                        "--http",
                        "gateway.server:HttpProtocol",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--log-level",
                        "warning",
                    ],
                    cwd=ROOT,
                    env=base_env,
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        for url in urls:
            _wait_healthy(url)
        yield list(zip(processes, urls, strict=True))
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def make_serve_process(env: dict[str, str], folder: Path) -> tuple[subprocess.Popen, str]:
    """Start `make serve` (in a process group of its own) with `env` over the test's environment, on
    a SQLite file in `folder` and a per-process cache, one worker on a free port; its output goes to
    `folder`/serve.log. Returns the process and the server's base URL."""
    port = free_port()
    base_env = {key: value for key, value in os.environ.items() if key not in {"DEBUG", "REDIS_URL"}}
    base_env |= {"DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}", "WORKERS": "1", "PORT": str(port)}
    with open(folder / "serve.log", "w") as log:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "serve"],
            cwd=ROOT,
            env=base_env | env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process, f"http://127.0.0.1:{port}"


def stop_process_group(process: subprocess.Popen) -> None:
    """Stop a process started in a session of its own, and everything it started."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
            process.wait(wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def make_serve(env: dict[str, str], folder: Path) -> Iterator[str]:
    """`make serve` (see make_serve_process), once it answers /healthz: yields its base URL."""
    process, url = make_serve_process(env, folder)
    try:
        deadline = time.monotonic() + 120  # migrations, then the worker loads the SDKs
        while not _answers(f"{url}/healthz"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"make serve did not start:\n{(folder / 'serve.log').read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        stop_process_group(process)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _wait_healthy(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not _answers(f"{url}/healthz"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"gateway at {url} did not become healthy")
        time.sleep(0.2)


class ThreadedGateway:
    """The gateway's ASGI app under uvicorn (with the production server's HTTP protocol), in a
    background thread of the test process.

    It shares the test's database (PostgreSQL, or SQLite's shared-cache in-memory test database,
    which every thread's connection sees), settings and cache, so a test can set things up with
    the ORM and then drive the gateway over real HTTP with the vendors' SDKs. Use it with
    `django_db(transaction=True)`: the server's connections see only committed rows.
    """

    def __init__(self):
        import uvicorn

        from gateway.asgi import application
        from gateway.server import HttpProtocol

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            application,
            host="127.0.0.1",
            port=self.port,
            http=HttpProtocol,
            log_level="warning",
            lifespan="off",
            access_log=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="gateway-uvicorn", daemon=True)

    def start(self) -> "ThreadedGateway":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the gateway thread did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="session")
def gateway_server(django_db_setup, django_db_blocker) -> Iterator[ThreadedGateway]:
    """One threaded gateway for the session (see ThreadedGateway)."""
    server = ThreadedGateway().start()
    yield server
    server.stop()
    # Connections the server's threads left open would keep the test database from being dropped.
    with django_db_blocker.unblock():
        connections.close_all()


@pytest.fixture
def gateway_url(gateway_server, transactional_db) -> str:
    """Base URL of the threaded gateway (http://127.0.0.1:<port>); implies a transactional test."""
    return gateway_server.url
