from asgiref.sync import sync_to_async
from django.http import JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, generics, viewsets
from rest_framework.filters import SearchFilter

from common.db import db_phase
from common.errors import GatewayError, error_body, error_response, from_api_exception, json_object
from common.request_ids import request_id_of
from completions.core import call_caller
from dialogs.models import Dialog, Message
from dialogs.serializers import DialogSerializer, MessageSerializer, message_create_validated
from dialogs.services import message_prepare, message_reply, message_reply_stream


class DialogViewSet(viewsets.ModelViewSet):
    """The signed-in user's dialogs, newest activity first; `?search=` matches titles."""

    serializer_class = DialogSerializer
    filter_backends = [SearchFilter]
    search_fields = ["title"]

    def get_queryset(self):
        return Dialog.objects.owned_by(self.request.user).select_related("model")

    def perform_create(self, serializer):
        serializer.save(owner=self.request.user)


class MessageListView(generics.ListAPIView):
    """A dialog's history, oldest first."""

    serializer_class = MessageSerializer

    def get_queryset(self):
        dialog = Dialog.objects.owned_by(self.request.user).filter(pk=self.kwargs["pk"]).first()
        if dialog is None:
            raise exceptions.NotFound("No such dialog.")
        return Message.objects.filter(dialog=dialog).select_related("model").order_by("created_at", "id")


_list_messages = MessageListView.as_view()


def _parse(request) -> dict:
    body = json_object(request.body)
    try:
        return message_create_validated(body)
    except exceptions.ValidationError as exc:
        raise from_api_exception(exc) from exc


def _prepare(request, dialog_id: int):
    """(the request's fields, the prepared call): the caller first (authenticated and counted),
    then the body."""
    user, api_key = call_caller(request)
    data = _parse(request)
    return data, message_prepare(
        user=user,
        api_key=api_key,
        dialog_id=dialog_id,
        content=data["content"],
        max_tokens=data.get("max_tokens"),
        temperature=data.get("temperature"),
        request_id=request_id_of(request),
    )


def _wants_stream(request, data: dict) -> bool:
    return data["stream"] or "text/event-stream" in request.headers.get("Accept", "")


@csrf_exempt
async def dialog_messages(request, pk: int):
    """GET: the history. POST: send a message and get the model's reply (streamed or not)."""
    if request.method == "GET":
        return await sync_to_async(_list_messages)(request, pk=pk)
    if request.method != "POST":
        return JsonResponse(error_body("method_not_allowed", f"Method {request.method} not allowed."), status=405)
    try:
        data, prepared = await db_phase(_prepare, request, pk)
        if _wants_stream(request, data):
            response = StreamingHttpResponse(message_reply_stream(prepared), content_type="text/event-stream")
            response["Cache-Control"] = "no-cache"
            response["X-Accel-Buffering"] = "no"
            return response
        return JsonResponse(await message_reply(prepared), status=201)
    except GatewayError as error:
        return error_response(error)
