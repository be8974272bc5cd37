"""Redis that fails on purpose. Load with `pytest_plugins = ["tests.faults.redis"]`.

- `throwaway_redis`: a redis-server of the test's own on a free port (no persistence), which the
  test stops (`kill()`: SIGKILL, connections refused), hangs (`pause()`: SIGSTOP, connections
  accepted but never answered), resumes and restarts on the same port.
- `gateway_on_throwaway_redis`: the threaded gateway (as tests/gateway's `live`) with its cache on that Redis, as
  REDIS_URL would set it (gateway.settings.redis_cache)."""

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from gateway.settings import redis_cache
from tests.live_server import free_port


class ThrowawayRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> "ThrowawayRedis":
        """Start (or restart, empty) the server on its port, and wait until it answers PING."""
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            + ["--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.01)
        return self

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16) == b"+PONG\r\n"
        except OSError:
            return False

    def kill(self) -> None:
        """Gone at once: connections are refused (the port is free for `start()` again)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)  # a paused server dies on SIGKILL too, but say so
            self.process.kill()
            self.process.wait(10)

    def pause(self) -> None:
        """Hung: the kernel still accepts connections, but nothing answers."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)


@pytest.fixture
def throwaway_redis() -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis().start()
    yield server
    server.kill()


@pytest.fixture
def gateway_on_throwaway_redis(
    gateway_url, seeded, fake_openai, fake_anthropic, fast_provider_settings, throwaway_redis, settings
) -> str:
    """The threaded gateway's base URL (the seeded catalog, both fake vendors), its cache (the
    test's too) on `throwaway_redis`."""
    # Django drops every thread's cache connections when CACHES changes, and again when the
    # `settings` fixture puts it back.
    settings.CACHES = {"default": redis_cache(throwaway_redis.url)}
    return gateway_url
