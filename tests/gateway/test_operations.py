"""What the operators see: /metrics (counts that match the bills, refusals, vendor errors, latency
histograms; only for whom it is allowed), and one JSON log line per call."""

import json
import logging
import os
import re
import subprocess
import sys
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import httpx2 as httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

import common.metrics  # noqa: F401  (its metrics registered, to list them)
from billing.models import UsageRecord
from tests.factories import make_key
from tests.live_server import gateway_processes

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "Say hello"}]


def scrape(base: str, **headers: str) -> dict[tuple[str, frozenset], float]:
    response = httpx.get(f"{base}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def grown(before: dict, after: dict, name: str, **labels: str) -> float:
    """How much the samples named `name` whose labels include `labels` grew, summed."""
    wanted = set(labels.items())
    return sum(
        value - before.get(key, 0.0)
        for key, value in after.items()
        if key[0] == name and wanted <= key[1] and value != before.get(key, 0.0)
    )


def chat(base: str, key: str, **fields) -> httpx.Response:
    body = {"model": "gpt-3.5-turbo", "messages": HELLO, "max_tokens": 20, **fields}
    return httpx.post(f"{base}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=10)


def messages(base: str, key: str, **fields) -> httpx.Response:
    body = {"model": "claude-3-sonnet", "messages": HELLO, "max_tokens": 20, **fields}
    return httpx.post(f"{base}/v1/messages", json=body, headers={"x-api-key": key}, timeout=10)


def test_the_metrics_count_what_the_usage_records_bill_and_every_refusal(
    live, alice, alice_key, fake_openai, fake_anthropic, monkeypatch
):
    monkeypatch.setattr("billing.ratelimit.clock", lambda: 1_800_000_010.0)  # one rate-limit window
    fake_openai.configure(usage=(12, 5))
    fake_anthropic.configure(usage=(9, 4))
    slow_key = make_key(alice, requests_per_minute=1)[1]
    poor_key = make_key(alice, token_limit=5)[1]
    before = scrape(live)

    assert chat(live, alice_key).status_code == 200
    streamed = chat(live, alice_key, stream=True, stream_options={"include_usage": True})
    assert streamed.status_code == 200 and "[DONE]" in streamed.text
    assert messages(live, alice_key).status_code == 200
    assert messages(live, alice_key, stream=True).status_code == 200
    assert chat(live, slow_key).status_code == 200
    assert chat(live, slow_key).status_code == 429  # its second request this minute
    assert chat(live, poor_key).status_code == 429  # over its token limit
    fake_openai.fail(400)
    assert chat(live, alice_key).status_code == 400
    after = scrape(live)

    records = UsageRecord.objects.all()
    billed: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for record in records:
        bill = billed[record.model_name]
        bill["requests"] += 1
        bill["prompt"] += record.prompt_tokens
        bill["completion"] += record.completion_tokens
        bill["cost"] += record.cost
    assert set(billed) == {"gpt-3.5-turbo", "claude-3-sonnet"} and len(records) == 6
    for model, bill in billed.items():
        assert grown(before, after, "gateway_requests_total", model=model) == bill["requests"]
        assert grown(before, after, "gateway_prompt_tokens_total", model=model) == bill["prompt"]
        assert grown(before, after, "gateway_completion_tokens_total", model=model) == bill["completion"]
        assert grown(before, after, "gateway_cost_usd_total", model=model) == pytest.approx(float(bill["cost"]))
    assert grown(before, after, "gateway_requests_total", endpoint="openai", status="ok") == 3
    assert grown(before, after, "gateway_requests_total", endpoint="anthropic", status="ok") == 2
    assert grown(before, after, "gateway_requests_total", status="error") == 1
    assert grown(before, after, "gateway_refusals_total", reason="rate_limited") == 1
    assert grown(before, after, "gateway_refusals_total", reason="quota_exceeded") == 1
    assert grown(before, after, "gateway_vendor_errors_total", kind="bad_request") == 1
    assert grown(before, after, "gateway_request_seconds_count") == 6
    assert grown(before, after, "gateway_vendor_seconds_count") == 6
    assert grown(before, after, "gateway_overhead_seconds_count") == 6
    assert grown(before, after, "gateway_time_to_first_token_seconds_count") == 2  # the two streams
    assert grown(before, after, "gateway_db_phase_wait_seconds_count") >= 6
    assert after[("gateway_streams_in_flight", frozenset())] == 0  # both ended


def test_metrics_are_only_for_the_allowed_addresses_or_the_token(live, settings):
    settings.METRICS_ALLOWED_IPS = ["10.1.2.3"]
    settings.METRICS_TOKEN = ""
    refused = httpx.get(f"{live}/metrics", timeout=5)
    assert refused.status_code == 404 and "gateway_requests" not in refused.text

    settings.METRICS_TOKEN = "scrape-secret-0123456789"
    assert httpx.get(f"{live}/metrics", headers={"Authorization": "Bearer wrong"}, timeout=5).status_code == 404
    assert scrape(live, Authorization="Bearer scrape-secret-0123456789")

    settings.METRICS_ALLOWED_IPS = ["127.0.0.1"]
    assert scrape(live)


def test_each_call_is_one_json_log_line_without_the_key(live, alice, alice_key, fake_anthropic, caplog):
    fake_anthropic.configure(usage=(9, 4))
    requests_log = logging.getLogger("gateway.requests")
    requests_log.addHandler(caplog.handler)  # it does not propagate to the root, where caplog listens
    try:
        response = messages(live, alice_key)
    finally:
        requests_log.removeHandler(caplog.handler)

    assert response.status_code == 200
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.requests"]
    record = UsageRecord.objects.get()
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == response.headers["x-request-id"] == record.gateway_request_id
    assert line["user"] == "alice" and line["key_prefix"] == record.api_key.prefix
    assert alice_key not in json.dumps(line) and line["key_prefix"] in alice_key
    assert (line["model"], line["endpoint"], line["status"], line["error"]) == (
        "claude-3-sonnet",
        "anthropic",
        "ok",
        None,
    )
    assert (line["prompt_tokens"], line["completion_tokens"]) == (9, 4)
    assert Decimal(line["cost_usd"]) == record.cost
    assert line["vendor_request_id"] == record.request_id
    assert line["latency_ms"] >= line["vendor_ms"] >= 0
    assert line["gateway_ms"] == line["latency_ms"] - line["vendor_ms"]


def test_the_request_log_turns_off_with_a_setting():
    check = "import django; django.setup(); import logging; print(logging.getLogger('gateway.requests').level)"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "gateway.settings"}
    levels = [
        subprocess.run(
            [sys.executable, "-c", check], env=env | extra, capture_output=True, text=True, check=True
        ).stdout.strip()
        for extra in ({}, {"REQUEST_LOG": "0"})
    ]
    assert levels == [str(logging.INFO), str(logging.WARNING)]


def test_metrics_add_up_across_server_processes(alice_key, seeded, fake_openai, tmp_path):
    fake_openai.configure(usage=(12, 5))
    with gateway_processes(2, redis=False, env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}) as urls:
        for url in urls:
            assert chat(url, alice_key).status_code == 200
        assert chat(urls[0], alice_key).status_code == 200
        for url in urls:
            samples = scrape(url)
            assert (
                samples[
                    (
                        "gateway_requests_total",
                        frozenset({"endpoint": "openai", "model": "gpt-3.5-turbo", "status": "ok"}.items()),
                    )
                ]
                == 3
            )
            assert samples[("gateway_prompt_tokens_total", frozenset({"model": "gpt-3.5-turbo"}.items()))] == 36


def test_the_grafana_dashboard_charts_only_metrics_the_gateway_has():
    dashboard = json.loads((Path(__file__).resolve().parents[2] / "deploy/grafana/gateway.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    named = {name for expr in exprs for name in re.findall(r"gateway_\w+", expr)}
    suffixes = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_count", "_sum"]}
    exported = {family.name + suffix for family in REGISTRY.collect() for suffix in suffixes.get(family.type, [])}
    assert named and named <= exported, named - exported
