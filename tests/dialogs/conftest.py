import json

import pytest
from asgiref.sync import async_to_sync

from dialogs.models import Dialog
from llm_models.models import LLMModel


@pytest.fixture
def gpt(seeded):
    return LLMModel.objects.get(name="gpt-4-turbo")


@pytest.fixture
def claude(seeded):
    return LLMModel.objects.get(name="claude-3-sonnet")


@pytest.fixture
def gpt_dialog(alice, gpt):
    return Dialog.objects.create(owner=alice, model=gpt, title="Plans")


@pytest.fixture
def claude_dialog(alice, claude):
    return Dialog.objects.create(owner=alice, model=claude, title="Poems")


def send(client, dialog, content="Hello there", **fields):
    return client.post(f"/api/dialogs/{dialog.pk}/messages/", {"content": content, **fields}, format="json")


def sse_events(response) -> list[tuple[str, dict]]:
    """The (event, data) pairs of a streamed response."""

    async def collect(stream):
        return b"".join([part async for part in stream])

    raw = async_to_sync(collect)(response.streaming_content).decode()
    events = []
    for block in raw.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events
