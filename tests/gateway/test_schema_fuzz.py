"""The OpenAPI schema (/api/schema/) tells the truth: schemathesis sends requests the schema
allows to every operation and fails on any 5xx or any answer the schema does not describe."""

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.asgi import application
from tests.factories import access_token, make_agent, make_dialog, make_key

pytestmark = pytest.mark.django_db(transaction=True)

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
EXAMPLES = 15  # per operation: the whole run stays well under a minute


def _fuzz(user) -> list[str]:
    schema = schemathesis.openapi.from_asgi("/api/schema/", application)
    headers = {"Authorization": f"Bearer {access_token(user)}"}
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            run()
        except BaseException as exc:  # noqa: BLE001 - every operation's failure is reported at once
            failures.append(f"{operation.label}: {exc}")
    return failures


def test_the_api_keeps_to_its_schema_for_a_user(seeded, alice, fake_openai, fake_anthropic, fast_provider_settings):
    make_agent(alice, model="gpt-4-turbo")
    make_agent(None, model="gpt-4-turbo", name="Shared helper")
    make_dialog(alice, model="gpt-4-turbo")
    make_key(alice)
    failures = _fuzz(alice)
    assert not failures, "\n\n".join(failures)


def test_the_api_keeps_to_its_schema_for_staff(
    seeded, staff, alice, fake_openai, fake_anthropic, fast_provider_settings
):
    make_agent(alice, model="gpt-4-turbo")
    make_dialog(staff, model="gpt-4-turbo")
    make_key(staff)
    failures = _fuzz(staff)
    assert not failures, "\n\n".join(failures)
