"""OpenAI-compatible embeddings: POST /v1/embeddings, for the catalog's embedding models, held
and billed per input token like any call."""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from common.db import db_phase
from common.errors import GatewayError
from completions.core import call_embed, embedding_prepare
from completions.openai_api import openai_error


@csrf_exempt
async def embeddings(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        return openai_error(GatewayError("Use POST.", status=405, type="method_not_allowed"))
    try:
        call = await db_phase(embedding_prepare, request)
        outcome = await call_embed(call)
    except GatewayError as error:
        return openai_error(error)
    usage = {"prompt_tokens": outcome.usage.prompt_tokens, "total_tokens": outcome.usage.prompt_tokens}
    # The vendor's answer (base64 or float vectors, as the client asked), under the catalog's name.
    return JsonResponse({"usage": usage} | (outcome.raw or {}) | {"model": call.model.name})
