"""OpenAPI additions drf-spectacular cannot infer: the one error shape on every operation, and the
async completion endpoints, which are plain Django views (DRF views cannot stream asynchronously)."""

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {"type": "string", "example": "validation_error"},
                "message": {"type": "string"},
                "fields": {"type": "object", "description": "Per-field messages (validation errors)."},
            },
            "additionalProperties": True,
        }
    },
}
ERROR_STATUSES = {
    "400": "Bad input (validation_error, invalid_request)",
    "401": "Not signed in, or a bad token or API key",
    "403": "Not allowed",
    "404": "Not found (or another user's object)",
    "413": "Request body too large",
    "429": "quota_exceeded or rate_limited (with Retry-After)",
}
COMPLETION_ERRORS = {
    "400": "Bad input (validation_error, invalid_request: max_tokens over the model's output limit), or the "
    "messages do not fit the model's context window (context_length_exceeded)",
    "404": "Not found, or the model does not exist or is disabled (model_not_found)",
    "502": "The vendor failed or rejected the gateway's credentials",
    "503": "The vendor is not configured",
    "504": "The vendor timed out",
}


def _errors(statuses: dict) -> dict:
    ref = {"$ref": "#/components/schemas/Error"}
    return {
        code: {"description": text, "content": {"application/json": {"schema": ref}}} for code, text in statuses.items()
    }


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


SECURITY: list[dict[str, list[str]]] = [{"jwtAuth": []}, {"apiKeyAuth": []}]
OBJECT = {"type": "object", "additionalProperties": True}
MESSAGE_CREATE = {
    "type": "object",
    "required": ["content"],
    "properties": {
        "content": {
            "description": "Text, or a list of parts: {type: text, text} and {type: image_url, image_url: {url}}.",
            "oneOf": [
                # Text that is not blank.
                {"type": "string", "minLength": 1, "maxLength": 1_000_000, "pattern": "\\S"},
                {"type": "array", "minItems": 1, "items": {"type": "object"}},
            ],
        },
        "stream": {"type": "boolean", "default": False},
        "max_tokens": {"type": "integer", "minimum": 1, "nullable": True},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2, "nullable": True},
    },
}
SSE = {
    "text/event-stream": {
        "schema": {
            "type": "string",
            "description": (
                "Server-Sent Events. Dialogs: message, delta {text}, usage, done | error. "
                "/v1/chat/completions: OpenAI chat.completion.chunk data lines, then [DONE]. "
                "/v1/messages: Anthropic message_start ... message_stop events."
            ),
        }
    }
}


def _completion_paths() -> dict:
    dialog_id = [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}]
    return {
        "/api/dialogs/{id}/messages/": {
            "get": {
                "operationId": "dialogs_messages_list",
                "tags": ["dialogs"],
                "security": SECURITY,
                "summary": "A dialog's history, oldest first (paginated)",
                "parameters": [*dialog_id, {"name": "page", "in": "query", "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "Messages", "content": _json(OBJECT)}, **_errors(ERROR_STATUSES)},
            },
            "post": {
                "operationId": "dialogs_messages_create",
                "tags": ["dialogs"],
                "security": SECURITY,
                "summary": "Send a message; get the model's reply, whole or streamed",
                "parameters": dialog_id,
                "requestBody": {"required": True, "content": _json(MESSAGE_CREATE)},
                "responses": {
                    "201": {"description": "user_message, assistant_message, usage", "content": _json(OBJECT)},
                    "200": {"description": "The reply streamed (stream: true)", "content": SSE},
                    **_errors({**ERROR_STATUSES, **COMPLETION_ERRORS}),
                },
            },
        },
        "/v1/chat/completions": {
            "post": {
                "operationId": "openai_chat_completions",
                "tags": ["vendor-compatible"],
                "security": SECURITY,
                "summary": "OpenAI-compatible chat completions (any catalog model)",
                "requestBody": {"required": True, "content": _json(OBJECT)},
                "responses": {
                    "200": {
                        "description": "chat.completion, or chat.completion.chunk events",
                        "content": {**_json(OBJECT), **SSE},
                    },
                    **_errors({**ERROR_STATUSES, **COMPLETION_ERRORS}),
                },
            }
        },
        "/v1/models": {
            "get": {
                "operationId": "v1_models_list",
                "tags": ["vendor-compatible"],
                "security": SECURITY,
                "summary": "The enabled models, in OpenAI's list format (Anthropic's with an anthropic-version header)",
                "responses": {
                    "200": {"description": "A model list", "content": _json(OBJECT)},
                    **_errors({"401": ERROR_STATUSES["401"]}),
                },
            }
        },
        "/v1/models/{id}": {
            "get": {
                "operationId": "v1_models_retrieve",
                "tags": ["vendor-compatible"],
                "security": SECURITY,
                "summary": "One enabled model, in OpenAI's format (Anthropic's with an anthropic-version header)",
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "A model", "content": _json(OBJECT)},
                    **_errors({"401": ERROR_STATUSES["401"], "404": "No enabled model of that name (model_not_found)"}),
                },
            }
        },
        "/v1/embeddings": {
            "post": {
                "operationId": "openai_embeddings",
                "tags": ["vendor-compatible"],
                "security": SECURITY,
                "summary": "OpenAI-compatible embeddings (the catalog's embedding models), billed per input token",
                "requestBody": {"required": True, "content": _json(OBJECT)},
                "responses": {
                    "200": {"description": "An embedding list", "content": _json(OBJECT)},
                    **_errors({**ERROR_STATUSES, **COMPLETION_ERRORS}),
                },
            }
        },
        "/v1/messages/count_tokens": {
            "post": {
                "operationId": "anthropic_messages_count_tokens",
                "tags": ["vendor-compatible"],
                "security": SECURITY,
                "summary": "Anthropic-compatible token count of a Messages request, offline (nothing held or billed)",
                "requestBody": {"required": True, "content": _json(OBJECT)},
                "responses": {
                    "200": {"description": "{input_tokens}", "content": _json(OBJECT)},
                    **_errors({**ERROR_STATUSES, "404": COMPLETION_ERRORS["404"]}),
                },
            }
        },
        "/v1/messages": {
            "post": {
                "operationId": "anthropic_messages",
                "tags": ["vendor-compatible"],
                "security": SECURITY,
                "summary": "Anthropic-compatible Messages API (any catalog model)",
                "requestBody": {"required": True, "content": _json(OBJECT)},
                "responses": {
                    "200": {"description": "A message, or its SSE events", "content": {**_json(OBJECT), **SSE}},
                    **_errors({**ERROR_STATUSES, **COMPLETION_ERRORS}),
                },
            }
        },
    }


def add_errors_and_completion_paths(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for code, response in _errors(ERROR_STATUSES).items():
                operation.setdefault("responses", {}).setdefault(code, response)
    result.setdefault("paths", {}).update(_completion_paths())
    return result
