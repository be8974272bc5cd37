import pytest

pytestmark = pytest.mark.django_db


def test_the_schema_describes_the_completion_endpoints_and_the_error_shape(anon_client):
    schema = anon_client.get("/api/schema/?format=json").json()
    assert {"/api/dialogs/{id}/messages/", "/v1/chat/completions", "/v1/models", "/v1/messages"} <= set(schema["paths"])
    send = schema["paths"]["/api/dialogs/{id}/messages/"]["post"]
    assert {"201", "400", "404", "429", "502", "504"} <= set(send["responses"])
    assert "context_length_exceeded" in send["responses"]["400"]["description"]
    # A whole reply is a 201 in JSON; a streamed one starts before it is stored: a 200 event stream.
    assert set(send["responses"]["201"]["content"]) == {"application/json"}
    assert set(send["responses"]["200"]["content"]) == {"text/event-stream"}
    assert schema["components"]["schemas"]["Error"]["properties"]["error"]["required"] == ["type", "message"]
    assert "401" in schema["paths"]["/api/models/"]["get"]["responses"]
