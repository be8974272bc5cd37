"""A throwaway PostgreSQL cluster a test may stop and start, and the gateway as `make serve`
runs it on that cluster (a pytest plugin: tests/conftest.py loads it).

- `throwaway_postgres`: a cluster of its own (initdb into a temp dir, trust auth, a free port),
  run as the `postgres` OS user when the tests run as root (PostgreSQL refuses root). `.stop()`
  kills it as a crash or a failover would (pg_ctl -m immediate), `.start()` brings it back.
  Skipped when the machine has no PostgreSQL binaries.
- `gateway_on_throwaway`: `make serve` (one worker, migrated first) on that cluster, with the
  fake OpenAI vendor; a user with an API key, the seeded models and a dialog in its database.
"""

import glob
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.fakes.fixtures import OPENAI_TEST_KEY
from tests.fakes.openai_server import FakeOpenAI
from tests.live_server import ROOT, free_port, make_serve

DATABASE = "gateway_faults"


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


class ThrowawayPostgres:
    def __init__(self, folder: Path, binaries: Path):
        self.folder = folder
        self.data = folder / "data"
        self.binaries = binaries
        self.port = free_port()
        # PostgreSQL will not run as root: then as the `postgres` user, who owns the folder.
        self.runner: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(folder, owner.pw_uid, owner.pw_gid)
            self.runner = ["runuser", "-u", "postgres", "--"]

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self.runner, str(self.binaries / tool), *args],
            check=True,
            capture_output=True,
            cwd=self.folder,
        )

    def create(self) -> "ThrowawayPostgres":
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")
        self.start()
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "start", "-w", "-D", str(self.data), "-l", str(self.folder / "log"), "-o", options)

    def stop(self) -> None:
        """Gone at once, its connections cut, as in a crash."""
        self._run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(self.data))

    def url(self, database: str = DATABASE) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def query(self, sql: str) -> list[tuple]:
        with psycopg.connect(self.url()) as conn:
            return conn.execute(sql).fetchall()


@pytest.fixture(scope="module")
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    binaries = _binaries()
    if binaries is None:
        pytest.skip("needs the PostgreSQL server binaries (/usr/lib/postgresql/*/bin)")
    if os.geteuid() == 0 and not _has_user("postgres"):
        pytest.skip("runs as root: needs a `postgres` OS user to run PostgreSQL as")
    folder = Path(tempfile.mkdtemp(prefix="gateway-pg-"))
    cluster = ThrowawayPostgres(folder, binaries).create()
    try:
        yield cluster
    finally:
        try:
            cluster.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(folder, ignore_errors=True)


# Made in the served database by a process of its own (the test's Django is on the test database).
_SETUP = """
import json
import django
django.setup()
from dialogs.models import Dialog
from tests import factories
models = factories.seed_models()
alice = factories.make_user("alice")
factories.set_quota(alice, token_limit=None, usd_limit=None)
_, secret = factories.make_key(alice)
dialog = Dialog.objects.create(owner=alice, model=models["gpt-3.5-turbo"])
print(json.dumps({"key": secret, "user": alice.pk, "dialog": dialog.pk}))
"""


@dataclass
class ServedGateway:
    url: str
    database: ThrowawayPostgres
    vendor: FakeOpenAI
    spool: Path
    key: str
    user: int
    dialog: int


@pytest.fixture(scope="module")
def gateway_on_throwaway(throwaway_postgres, fake_openai_server, tmp_path_factory) -> Iterator[ServedGateway]:
    folder = tmp_path_factory.mktemp("serve")
    spool = folder / "spool"
    env = {
        "DATABASE_URL": throwaway_postgres.url() + "?pool_max=8",
        "SECRET_KEY": "fault-tests-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "OPENAI_BASE_URL": fake_openai_server.base_url,
        "OPENAI_API_KEY": OPENAI_TEST_KEY,
        "PROVIDER_MAX_RETRIES": "0",
        "SETTLEMENT_SPOOL_DIR": str(spool),
        "SETTLEMENT_REPLAY_SECONDS": "1",
    }
    with make_serve(env, folder) as url:
        made = subprocess.run(
            [sys.executable, "-c", _SETUP],
            cwd=ROOT,
            env={**os.environ, **env, "DJANGO_SETTINGS_MODULE": "gateway.settings"},
            check=True,
            capture_output=True,
            text=True,
        )
        rows = json.loads(made.stdout.strip().splitlines()[-1])
        yield ServedGateway(
            url, throwaway_postgres, fake_openai_server, spool, rows["key"], rows["user"], rows["dialog"]
        )
