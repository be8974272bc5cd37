"""Server processes that die, are told to stop, or serve a call longer than a reservation's lease:
a dead process's reservations are freed by the others, a process told to stop bills what its
streams sent before it exits, and a call still running keeps its reservation however long it
lasts (so the quota is never passed). Real server processes on PostgreSQL, and the fake vendors."""

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
import pytest
from django.conf import settings
from django.db.models import Sum

from billing.models import Quota, Reservation, UsageRecord
from dialogs.models import Message
from tests.factories import access_token, make_dialog, make_key, set_quota
from tests.live_server import database_url, gateway_process_pool, make_serve_process, stop_process_group

pytestmark = pytest.mark.django_db(transaction=True)

LEASE = {"RESERVATION_LEASE_SECONDS": "2"}  # renewed every half second
CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "hello"}]


def wait_until(condition: Callable[[], bool], *, seconds: float = 20) -> bool:
    """Whether `condition` came true within `seconds` (polled)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


class Stream:
    """A streamed chat completion read in a thread: the text received so far, and how it ended."""

    def __init__(self, url: str, secret: str, *, max_tokens: int = 100):
        self.text = ""
        self.ended = threading.Event()
        body = {"model": "gpt-3.5-turbo", "messages": HELLO, "stream": True, "max_tokens": max_tokens}
        self.thread = threading.Thread(target=self._read, args=(url + CHAT, secret, body), daemon=True)
        self.thread.start()

    def _read(self, url: str, secret: str, body: dict) -> None:
        try:
            with httpx.stream("POST", url, json=body, headers={"Authorization": f"Bearer {secret}"}, timeout=60) as r:
                for line in r.iter_lines():
                    if line.startswith("data: {"):
                        for choice in json.loads(line[6:]).get("choices") or []:
                            self.text += choice["delta"].get("content") or ""
        except httpx.HTTPError:
            pass  # the server went away mid-stream
        finally:
            self.ended.set()


def test_a_killed_process_reservations_are_released_by_the_others(alice, seeded, fake_openai):
    fake_openai.configure(text="word " * 60, chunk_delay=0.5)
    set_quota(alice, token_limit=10_000, requests_per_minute=None)
    _, secret = make_key(alice)
    env = {"OPENAI_BASE_URL": fake_openai.base_url, "OPENAI_API_KEY": "sk-test", **LEASE}

    with gateway_process_pool(2, redis=False, env=env) as [(doomed, doomed_url), (_, survivor_url)]:
        stream = Stream(doomed_url, secret)
        assert wait_until(lambda: bool(stream.text))
        assert Reservation.objects.count() == 1
        # The survivor serves the API (and so renews and releases leases).
        assert httpx.get(f"{survivor_url}/v1/models", headers={"Authorization": f"Bearer {secret}"}).is_success
        doomed.kill()
        assert stream.ended.wait(20)

        assert wait_until(lambda: not Reservation.objects.exists())
    assert Quota.objects.get(user=alice).reserved_tokens == 0


def test_a_call_longer_than_the_lease_keeps_its_reservation_and_the_quota_holds(alice, seeded, fake_openai):
    # Each call holds its prompt and 100 reply tokens: the quota has room for one at a time.
    fake_openai.configure(text="word " * 12, chunk_delay=0.5, usage=(8, 12))
    set_quota(alice, token_limit=150, requests_per_minute=None)
    _, secret = make_key(alice)
    env = {"OPENAI_BASE_URL": fake_openai.base_url, "OPENAI_API_KEY": "sk-test", **LEASE}
    body = {"model": "gpt-3.5-turbo", "messages": HELLO, "max_tokens": 100}

    def call(url: str) -> int:
        return httpx.post(url + CHAT, json=body, headers={"Authorization": f"Bearer {secret}"}, timeout=60).status_code

    with gateway_process_pool(2, redis=False, env=env) as [(_, first), (_, second)]:
        stream = Stream(first, secret)
        # Past two leases into the call (a chunk every half second), the others race for the quota.
        assert wait_until(lambda: stream.text.count("word") >= 9)
        with ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(call, [first, second] * 3))
        assert stream.ended.wait(30)

    assert statuses == [429] * 6
    assert stream.text.split() == ["word"] * 12  # the whole reply
    used = UsageRecord.objects.filter(user=alice).aggregate(total=Sum("prompt_tokens") + Sum("completion_tokens"))
    assert used["total"] <= 150
    quota = Quota.objects.get(user=alice)
    assert (quota.used_tokens, quota.reserved_tokens) == (used["total"], 0)


def _gunicorn_master(make: int) -> int:
    """The gunicorn master under `make serve` (make may run it through a shell)."""
    pid = make
    # The process whose program (its first or, for a script, second argument) is gunicorn: not a
    # shell whose command line merely mentions it.
    while not any(arg.endswith(b"/gunicorn") for arg in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2]):
        (pid,) = map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())
    return pid


def test_a_server_told_to_stop_bills_what_its_streams_sent_before_it_exits(alice, seeded, fake_openai, tmp_path: Path):
    fake_openai.configure(text="word " * 60, chunk_delay=0.5, usage=None)
    dialog = make_dialog(alice, model="gpt-3.5-turbo")
    env = {
        "DATABASE_URL": database_url(),
        "SECRET_KEY": settings.SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1",
        "GRACEFUL_TIMEOUT": "7",  # the calls get 2 s, then 5 s to settle
    }
    process, url = make_serve_process(env, tmp_path)
    try:
        assert wait_until(lambda: _answers(url), seconds=120), (tmp_path / "serve.log").read_text()
        received: list[str] = []
        done = threading.Event()
        headers = {"Authorization": f"Bearer {access_token(alice)}"}

        def converse() -> None:
            body = {"content": "hello", "stream": True}
            try:
                with httpx.stream(
                    "POST", f"{url}/api/dialogs/{dialog.pk}/messages/", json=body, headers=headers, timeout=60
                ) as response:
                    for line in response.iter_lines():
                        if line.startswith("data: ") and '"text"' in line:
                            received.append(json.loads(line[6:])["text"])
            except httpx.HTTPError:
                pass
            finally:
                done.set()

        threading.Thread(target=converse, daemon=True).start()
        assert wait_until(lambda: bool(received))
        os.kill(_gunicorn_master(process.pid), signal.SIGTERM)
        assert process.wait(30) is not None and done.wait(5)
    finally:
        stop_process_group(process)

    reply = Message.objects.get(dialog=dialog, role="assistant")
    assert reply.status == "incomplete" and reply.content == "".join(received)
    record = UsageRecord.objects.get(user=alice)
    assert record.status == "incomplete" and record.completion_tokens == reply.completion_tokens > 0
    assert not Reservation.objects.exists()
    assert Quota.objects.get(user=alice).reserved_tokens == 0


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
