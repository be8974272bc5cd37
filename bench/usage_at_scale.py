"""How fast the usage endpoints answer with a million usage records.

    .venv/bin/python bench/usage_at_scale.py [--records 1000000]

Makes (or refills) the PostgreSQL database `gateway_usage_scale`, fills it with usage records
spread over 100 users, 4 models and 90 days, builds the daily aggregates the way settlement
keeps them, then times the endpoints in-process (median of 5 calls each) and prints a table.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB = "gateway_usage_scale"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args()

    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"DROP DATABASE IF EXISTS {DB}"], check=True)
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {DB}"], check=True)
    os.environ.update(
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{DB}",
        DEBUG="0",
        SECRET_KEY="bench-usage-scale-secret-key-0123456789",
        ALLOWED_HOSTS="testserver",
    )
    os.environ.pop("REDIS_URL", None)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from rest_framework.test import APIClient

    call_command("migrate", verbosity=0)
    call_command("seed_models", verbosity=0)
    users = get_user_model().objects
    staff = users.create_user("staff", is_staff=True, is_superuser=True)
    for n in range(100):
        users.create_user(f"user{n}")

    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO billing_usagerecord (user_id, model_id, model_name, endpoint, prompt_tokens,
                completion_tokens, cost, status, request_id, created_at)
            SELECT u.id, m.id, m.name, 'dialogs', 100 + (g %% 900), 50 + (g %% 400),
                   ((100 + (g %% 900)) * m.input_price_per_1k + (50 + (g %% 400)) * m.output_price_per_1k) / 1000,
                   'ok', '', now() - ((g %% 90) || ' days')::interval - ((g %% 86400) || ' seconds')::interval
            FROM generate_series(1, %s) AS g
            JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM auth_user WHERE NOT is_staff) u
              ON u.n = g %% 100
            JOIN (SELECT id, name, input_price_per_1k, output_price_per_1k,
                         row_number() OVER (ORDER BY id) - 1 AS n FROM llm_models_llmmodel) m
              ON m.n = (g / 100) %% 4
            """,
            [args.records],
        )
        cursor.execute(
            """
            INSERT INTO billing_dailyusage (user_id, model_name, day, requests, prompt_tokens, completion_tokens, cost)
            SELECT user_id, model_name, created_at::date, count(*), sum(prompt_tokens),
                   sum(completion_tokens), sum(cost)
            FROM billing_usagerecord GROUP BY user_id, model_name, created_at::date
            """
        )
        cursor.execute("ANALYZE")
        cursor.execute("SELECT count(*) FROM billing_usagerecord")
        records = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM billing_dailyusage")
        aggregates = cursor.fetchone()[0]
    print(f"{records:,} usage records, {aggregates:,} daily aggregates, filled in {time.monotonic() - started:.0f} s")

    user = users.get(username="user7")
    api = APIClient()
    admin = APIClient()
    admin.force_login(staff)
    cases = [
        ("GET /api/me/usage/ (30 days)", api, user, "/api/me/usage/"),
        ("GET /api/me/usage/ (90 days)", api, user, "/api/me/usage/?start=2000-01-01"),
        ("GET /api/admin/usage/ (30 days, by user/model/day)", api, staff, "/api/admin/usage/"),
        ("GET /api/admin/usage/ (90 days)", api, staff, "/api/admin/usage/?start=2000-01-01"),
        ("admin: usage records list", admin, None, "/admin/billing/usagerecord/"),
        ("admin: usage records, one user", admin, None, "/admin/billing/usagerecord/?q=user7"),
    ]
    print(f"\n{'request':55} {'median ms':>10} {'max ms':>8}")
    for label, client, who, url in cases:
        if who is not None:
            client.force_authenticate(who)
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        print(f"{label:55} {statistics.median(times):10.1f} {max(times):8.1f}")


if __name__ == "__main__":
    main()
