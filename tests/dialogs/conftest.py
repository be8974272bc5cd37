import json

import pytest
from asgiref.sync import async_to_sync

from tests.factories import make_dialog


@pytest.fixture
def gpt4_turbo_dialog(alice, gpt4_turbo):
    return make_dialog(alice, model=gpt4_turbo, title="Plans")


@pytest.fixture
def claude_sonnet_dialog(alice, claude_sonnet):
    return make_dialog(alice, model=claude_sonnet, title="Poems")


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
