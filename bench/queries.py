"""The SQL one request sends: each statement, for the chat endpoint and the dialog endpoint.

    python -m bench.queries            # uses gateway_bench and Redis db 14, like bench.run

Starts the fake vendor, makes the bench rows (bench.setup_data), then sends requests through
Django's AsyncClient in this process with every statement recorded (an execute wrapper on each
new connection, the same hook as bench/gunicorn_conf.py). The first request of each kind warms
the caches; the second is the one printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

from bench.run import PYTHON, ROOT, free_port


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/gateway_bench"),
    )
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    args = parser.parse_args(argv)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="gateway.settings",
        DEBUG="0",
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        CACHE_KEY_PREFIX="gwbench",
        BENCH_API_KEY="sk-bench-fake",
        SECRET_KEY="bench-only-secret-key-0123456789abcdef-0123456789",
        ALLOWED_HOSTS="testserver",
    )
    port = free_port()
    vendor = subprocess.Popen(
        [PYTHON, "-m", "bench.fake_vendor", "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL
    )
    try:
        time.sleep(0.5)
        out = subprocess.run(
            [PYTHON, "-m", "bench.setup_data", "--vendor-url", f"http://127.0.0.1:{port}", "--dialogs", "1"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        data = json.loads(out.stdout.strip().splitlines()[-1])
        asyncio.run(_requests(data["key"], data["dialogs"][0]))
    finally:
        vendor.terminate()
        vendor.wait()


async def _requests(key: str, dialog_id: int) -> None:
    import django

    django.setup()
    from django.db.backends.signals import connection_created
    from django.test import AsyncClient

    statements: list[str] = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    def on_connect(sender, connection, **kwargs):
        if record not in connection.execute_wrappers:
            connection.execute_wrappers.append(record)

    connection_created.connect(on_connect, weak=False)
    client = AsyncClient()
    auth = {"Authorization": f"Bearer {key}"}
    chat = {"model": "bench-instant", "messages": [{"role": "user", "content": "Hello there"}]}
    kinds = [
        ("POST /v1/chat/completions", "/v1/chat/completions", chat),
        (
            "POST /v1/chat/completions (stream)",
            "/v1/chat/completions",
            chat | {"stream": True, "stream_options": {"include_usage": True}},
        ),
        ("POST /api/dialogs/{id}/messages/", f"/api/dialogs/{dialog_id}/messages/", {"content": "Hello there"}),
        (
            "POST /api/dialogs/{id}/messages/ (stream)",
            f"/api/dialogs/{dialog_id}/messages/",
            {"content": "Hello there", "stream": True},
        ),
    ]
    for title, path, body in kinds:
        for _attempt in range(2):
            statements.clear()
            response = await client.post(path, body, content_type="application/json", headers=auth)
            if body.get("stream"):
                async for _ in response.streaming_content:
                    pass
            if response.status_code >= 300:
                sys.exit(f"{title}: HTTP {response.status_code} {response.content[:300]!r}")
        print(f"\n{title}: {len(statements)} statements")
        for sql in statements:
            print("   ", sql[:150])


if __name__ == "__main__":
    main()
