"""GET /v1/models and GET /v1/models/{id}: the enabled catalog, in the format of the SDK asking.

Both SDKs call the same paths; the Anthropic SDK sends an `anthropic-version` header on every
request, so that picks Anthropic's shapes (and error bodies), and anything else gets OpenAI's."""

from asgiref.sync import sync_to_async
from django.http import HttpRequest, JsonResponse
from rest_framework import exceptions

from accounts.credentials import authenticate_request
from common.errors import GatewayError, from_api_exception
from completions.anthropic_api import anthropic_error
from completions.core import ModelNotFound
from completions.openai_api import openai_error
from llm_models.models import LLMModel, could_be_model_name


def _wants_anthropic(request: HttpRequest) -> bool:
    return "anthropic-version" in request.headers


def _openai_shape(model: LLMModel) -> dict:
    return {
        "id": model.name,
        "object": "model",
        "created": int(model.created_at.timestamp()),
        "owned_by": model.provider,
    }


def _anthropic_shape(model: LLMModel) -> dict:
    return {"type": "model", "id": model.name, "display_name": model.name, "created_at": model.created_at.isoformat()}


def _enabled(request: HttpRequest, name: str | None) -> list[LLMModel]:
    """Sync: the caller's credentials checked, then the enabled models (or the one named)."""
    try:
        authenticate_request(request)
    except exceptions.APIException as exc:
        raise from_api_exception(exc) from exc
    models = LLMModel.objects.enabled()
    if name is None:
        return list(models)
    # In a path, a name no model could have is simply not found (and costs no query).
    model = models.filter(name=name).first() if could_be_model_name(name) else None
    if model is None:
        raise ModelNotFound(f"The model '{name[:100]}' does not exist or is disabled.", param="model")
    return [model]


async def _answer(request: HttpRequest, name: str | None) -> JsonResponse:
    anthropic = _wants_anthropic(request)
    if request.method != "GET":
        error = GatewayError("Use GET.", status=405, type="method_not_allowed", headers={"Allow": "GET"})
        return anthropic_error(error) if anthropic else openai_error(error)
    try:
        found = await sync_to_async(_enabled)(request, name)
    except GatewayError as error:
        return anthropic_error(error) if anthropic else openai_error(error)
    if anthropic:
        data = [_anthropic_shape(model) for model in found]
        if name is not None:
            return JsonResponse(data[0])
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        return JsonResponse({"data": data, "has_more": False, "first_id": first, "last_id": last})
    if name is not None:
        return JsonResponse(_openai_shape(found[0]))
    return JsonResponse({"object": "list", "data": [_openai_shape(model) for model in found]})


async def models(request: HttpRequest) -> JsonResponse:
    """GET /v1/models: the enabled models."""
    return await _answer(request, None)


async def model(request: HttpRequest, name: str) -> JsonResponse:
    """GET /v1/models/{id}: one enabled model, or 404."""
    return await _answer(request, name)
