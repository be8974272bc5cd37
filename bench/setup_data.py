"""Rows the benchmark needs, in the bench database (run with the gateway's environment):
the models pointed at the fake vendor, a user with a large quota, an API key, and dialogs.

    python -m bench.setup_data --vendor-url http://127.0.0.1:8199 --dialogs 1000

Prints JSON: {"key": <secret>, "user_id": ..., "dialogs": [ids...]}. Safe to rerun: models
are updated in place, the user's quota is reset, a new key and new dialogs are made each run.
"""

import argparse
import json
import os
import sys


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vendor-url", required=True)
    parser.add_argument("--dialogs", type=int, default=0, help="fresh dialogs to create")
    parser.add_argument("--username", default="bench")
    parser.add_argument(
        "--rpm",
        type=int,
        default=2_000_000_000,
        help="the user's requests-per-minute limit: high enough never to refuse, "
        "but set, so every request still counts itself in Redis",
    )
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.utils import timezone

    from billing.keys import api_key_create
    from billing.models import Quota
    from billing.periods import period_start
    from dialogs.models import Dialog
    from llm_models.models import LLMModel

    vendor = args.vendor_url.rstrip("/")
    models = {
        # provider "openai" and a gpt-4o model id: prompts are counted with tiktoken (o200k), as
        # for a real OpenAI model; base_url sends the calls to the fake vendor, with a key of its
        # own (OPENAI_API_KEY goes only to OpenAI: llm_models.vendor_keys).
        "bench-instant": f"{vendor}/v1",
        "bench-slow": f"{vendor}/slow/v1",
    }
    with transaction.atomic():
        for name, base_url in models.items():
            LLMModel.objects.update_or_create(
                name=name,
                defaults=dict(
                    provider="openai",
                    provider_model="gpt-4o-mini",
                    context_window=128_000,
                    max_output_tokens=4096,
                    input_price_per_1k="0.000150",
                    output_price_per_1k="0.000600",
                    enabled=True,
                    base_url=base_url,
                    api_key_env="BENCH_API_KEY",
                ),
            )
        user, _ = get_user_model().objects.get_or_create(
            username=args.username, defaults={"email": "bench@example.com"}
        )
        now = timezone.now()
        # A real quota (not unlimited): every request reserves and settles against it.
        Quota.objects.update_or_create(
            user=user,
            defaults=dict(
                unlimited=False,
                token_limit=10**15,
                usd_limit=None,
                period="none",
                requests_per_minute=args.rpm,
                tokens_per_minute=None,
                used_tokens=0,
                reserved_tokens=0,
                used_usd=0,
                reserved_usd=0,
                period_start=period_start("none", now),
            ),
        )
        _, secret = api_key_create(user=user, name=f"bench {now:%Y-%m-%d %H:%M:%S}")
        model = LLMModel.objects.get(name="bench-instant")
        dialogs = Dialog.objects.bulk_create(
            [Dialog(owner=user, model=model, title=f"bench {i}") for i in range(args.dialogs)]
        )
    json.dump({"key": secret, "user_id": user.pk, "dialogs": [d.pk for d in dialogs]}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
