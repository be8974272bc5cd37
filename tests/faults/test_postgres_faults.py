"""PostgreSQL goes away under the gateway (`make serve`) and comes back.

After each fault, the invariant: every request the vendor answered gave its client the answer
(or a clear error); once the database is back and the spool applied, the usage records, the
quota's used and reserved and the daily aggregates agree with what was delivered; nothing is
billed twice and no reservation is left behind."""

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx2 as httpx

from tests.faults.postgres import ServedGateway

REPLY = "one two three four five six seven eight"


@dataclass
class Answer:
    status: int
    text: str
    total_tokens: int | None  # as the client was told
    body: dict | None = None  # a non-stream answer's, or a stream's error event


def chat(gateway: ServedGateway, *, stream: bool) -> Answer:
    body = {
        "model": "gpt-3.5-turbo",
        "messages": [{"role": "user", "content": "Count to eight."}],
        "max_tokens": 50,
    }
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    headers = {"Authorization": f"Bearer {gateway.key}"}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=120) as client:
        if not stream:
            response = client.post("/v1/chat/completions", json=body)
            data = response.json()
            if response.status_code != 200:
                return Answer(response.status_code, "", None, data)
            return Answer(200, data["choices"][0]["message"]["content"], data["usage"]["total_tokens"], data)
        text, total, error = "", None, None
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                return Answer(response.status_code, "", None, json.loads(response.read()))
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                if "error" in event:
                    error = event
                for choice in event.get("choices", []):
                    text += choice["delta"].get("content") or ""
                if event.get("usage"):
                    total = event["usage"]["total_tokens"]
        return Answer(200, text, total, error)


def dialog_message(gateway: ServedGateway) -> Answer:
    headers = {"Authorization": f"Bearer {gateway.key}"}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=120) as client:
        response = client.post(f"/api/dialogs/{gateway.dialog}/messages/", json={"content": "Count to eight."})
    data = response.json()
    if response.status_code != 200 and response.status_code != 201:
        return Answer(response.status_code, "", None, data)
    return Answer(response.status_code, data["assistant_message"]["content"], None, data)


def dialog_stream(gateway: ServedGateway) -> Answer:
    """The streamed deltas' text, and the last event's data (an error's, or `done`'s)."""
    headers = {"Authorization": f"Bearer {gateway.key}"}
    text, event, last = "", "", None
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=120) as client:
        body = {"content": "Count to eight.", "stream": True}
        with client.stream("POST", f"/api/dialogs/{gateway.dialog}/messages/", json=body) as response:
            for line in response.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    last = {event: json.loads(line[6:])}
                    text += last.get("delta", {}).get("text", "")
    return Answer(response.status_code, text, None, last)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never came true: {what}")
        time.sleep(0.2)


def spool_empty(gateway: ServedGateway) -> bool:
    return not any(path.stat().st_size for path in gateway.spool.glob("*.jsonl"))


def assert_the_books_balance(gateway: ServedGateway) -> list[tuple]:
    """The invariant over everything the user was billed; the usage records, oldest first."""
    db = gateway.database
    records = db.query(
        f"""SELECT endpoint, prompt_tokens + completion_tokens, cost, settlement, message_id
              FROM billing_usagerecord WHERE user_id = {gateway.user} ORDER BY id"""
    )
    used_tokens, reserved_tokens, used_usd, reserved_usd = db.query(
        f"SELECT used_tokens, reserved_tokens, used_usd, reserved_usd FROM billing_quota WHERE user_id = {gateway.user}"
    )[0]
    days = db.query(
        f"SELECT COALESCE(SUM(requests), 0), COALESCE(SUM(prompt_tokens + completion_tokens), 0),"
        f" COALESCE(SUM(cost), 0) FROM billing_dailyusage"
        f" WHERE user_id = {gateway.user}"
    )[0]
    assert db.query("SELECT count(*) FROM billing_reservation") == [(0,)]
    assert (reserved_tokens, reserved_usd) == (0, 0)
    assert len({record[3] for record in records}) == len(records), "a settlement applied twice"
    assert used_tokens == sum(record[1] for record in records)
    assert used_usd == sum(record[2] for record in records)
    assert days == (len(records), used_tokens, used_usd)
    return records


def test_a_database_outage_mid_request_delivers_every_reply_and_bills_it_once(gateway_on_throwaway):
    gateway = gateway_on_throwaway
    gateway.vendor.reset()
    # Every request is admitted and at the vendor when the database stops; the replies come after.
    gateway.vendor.configure(text=REPLY, first_byte_delay=2.0, chunk_delay=0.1)
    billed_before = len(assert_the_books_balance(gateway))
    with ThreadPoolExecutor(8) as pool:
        calls = [pool.submit(chat, gateway, stream=stream) for stream in (True, False) * 3]
        dialog = pool.submit(dialog_message, gateway)
        streamed_dialog = pool.submit(dialog_stream, gateway)
        wait_for(lambda: len(gateway.vendor.requests) == 8, "every request reached the vendor")
        gateway.database.stop()
        try:
            answers = [call.result() for call in calls]
            dialog_answer = dialog.result()
            streamed_dialog_answer = streamed_dialog.result()
        finally:
            gateway.database.start()

    # Every client got the vendor's whole answer, and its usage.
    for answer in answers:
        assert (answer.status, answer.text, answer.total_tokens is not None) == (200, REPLY, True), answer
        assert answer.body is None or "error" not in answer.body
    # A dialog's reply could not be saved: a clear error that carries it (after the deltas).
    assert dialog_answer.status == 503
    assert dialog_answer.body["error"]["type"] == "reply_not_saved"
    assert dialog_answer.body["error"]["reply"] == REPLY
    assert streamed_dialog_answer.text == REPLY
    assert streamed_dialog_answer.body["error"]["error"]["type"] == "reply_not_saved"
    assert streamed_dialog_answer.body["error"]["error"]["reply"] == REPLY

    wait_for(lambda: spool_empty(gateway), "the spool was applied")
    records = assert_the_books_balance(gateway)[billed_before:]
    assert sorted(total for endpoint, total, *_ in records if endpoint == "openai") == sorted(
        answer.total_tokens for answer in answers
    )
    # Each dialog's reply is billed once, without a message to link to.
    assert [(record[0], record[4]) for record in records if record[0] == "dialogs"] == [("dialogs", None)] * 2


def test_the_requests_after_a_database_restart_succeed(gateway_on_throwaway):
    gateway = gateway_on_throwaway
    gateway.vendor.reset()
    gateway.vendor.configure(text=REPLY)
    with ThreadPoolExecutor(4) as pool:  # the pool holds several connections
        assert {answer.status for answer in pool.map(lambda _: chat(gateway, stream=False), range(8))} == {200}
    gateway.database.stop()
    gateway.database.start()

    statuses = [chat(gateway, stream=stream).status for stream in (False, True) * 5]

    assert statuses == [200] * 10
    assert_the_books_balance(gateway)
