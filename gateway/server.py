"""The HTTP server's own limits on a request's head (its request line and headers): how large it
may be, how many headers it may have and how long it may take to arrive, as a reverse proxy bounds
them (nginx: large_client_header_buffers, client_header_timeout), so a gateway that faces clients
directly is as safe as one behind a proxy.

uvicorn's httptools protocol has none of these: it waits for a head forever, and httptools joins
the pieces of a long header by copying them, so one 50 MB header holds a worker's only thread for
minutes (gunicorn then kills the worker, and every request in flight on it). `make serve` runs
gunicorn with `Worker`, whose HTTP is `HttpProtocol`; `make run` gives uvicorn the same protocol.
The limits are settings (MAX_REQUEST_HEADER_BYTES, MAX_REQUEST_HEADERS,
REQUEST_HEADER_TIMEOUT_SECONDS), read when a connection opens.

`Worker` also ends its calls settled when it shuts down (see there)."""

import asyncio
import json
import logging
import socket
import sys
from typing import Any

import httptools
from django.conf import settings
from gunicorn.arbiter import Arbiter
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import Server, ServerState
from uvicorn_worker import UvicornWorker

from common.errors import error_body
from common.inflight import calls_cancel
from common.request_ids import new_request_id


class HeadRefused(Exception):
    """A request head over the limits: the parser stops, the client gets a 431 and is hung up on."""


class HttpProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.max_head_bytes: int = settings.MAX_REQUEST_HEADER_BYTES
        self.max_headers: int = settings.MAX_REQUEST_HEADERS
        self.head_timeout: float = settings.REQUEST_HEADER_TIMEOUT_SECONDS
        self.head_timer: asyncio.TimerHandle | None = None
        self.head_bytes = 0  # the request line and the headers parsed so far
        self.header_count = 0
        # httptools hands a header over only once it is whole, so the bytes of one still arriving
        # are counted as they come: every chunk after which the head is still incomplete (but the
        # one it began in, which may end a previous request's body).
        self.incomplete_head_bytes = 0
        self.head_began_in_chunk = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._time_head()  # a connection that sends nothing is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timing_head()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's, but a head over the limits is answered 431 (uvicorn would say 400).
        self._unset_keepalive_if_required()
        self.head_began_in_chunk = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            if isinstance(error.__context__, HeadRefused):
                self._refuse_head(str(error.__context__))
            else:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self.head_timer is not None and not self.head_began_in_chunk:
            self.incomplete_head_bytes += len(data)
            if self.incomplete_head_bytes > self.max_head_bytes:
                self._refuse_head(f"The request's headers are over {self.max_head_bytes} bytes.")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.head_bytes = self.header_count = self.incomplete_head_bytes = 0
        self.head_began_in_chunk = True
        self._time_head()

    def on_url(self, url: bytes) -> None:
        self._count_head_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_count += 1
        if self.header_count > self.max_headers:
            raise HeadRefused(f"The request has more than {self.max_headers} headers.")
        self._count_head_bytes(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._stop_timing_head()
        super().on_headers_complete()

    def _count_head_bytes(self, count: int) -> None:
        self.head_bytes += count
        if self.head_bytes > self.max_head_bytes:
            raise HeadRefused(f"The request's headers are over {self.max_head_bytes} bytes.")

    def _time_head(self) -> None:
        self._stop_timing_head()
        self.head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _stop_timing_head(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        # As a proxy does: hang up without an answer (the client may never have sent a byte).
        self.head_timer = None
        self.transport.close()

    def _refuse_head(self, message: str) -> None:
        self.logger.warning("Request refused: %s", message)
        self._stop_timing_head()
        # A pipelined request's head may arrive while the previous answer is still being written.
        if self.cycle is None or self.cycle.response_complete:
            body = json.dumps(error_body("request_header_too_large", message)).encode()
            head = [
                STATUS_LINE[431],
                *[name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers],
                b"content-type: application/json\r\n",
                b"content-length: %d\r\n" % len(body),
                b"x-request-id: " + new_request_id().encode() + b"\r\n",
                b"connection: close\r\n\r\n",
            ]
            self.transport.write(b"".join(head) + body)
        self.transport.close()


logger = logging.getLogger("uvicorn.error")

# Of gunicorn's graceful timeout, what a worker shutting down keeps for ending its calls settled.
SETTLE_SECONDS = 5.0


class ShuttingDownServer(Server):
    """uvicorn's server, but once the calls in flight have had their grace
    (config.timeout_graceful_shutdown) they are cancelled and waited for: each settles what it
    sent (completions.core) before the process exits. uvicorn alone would cancel only its own
    tasks, not the ones Django streams replies in, and gunicorn then kills the process with its
    calls unsettled."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        ended = await calls_cancel(timeout=SETTLE_SECONDS)
        if ended:
            logger.warning("Ended %d call(s) still running at shutdown, settled.", ended)


class Worker(UvicornWorker):
    """gunicorn's worker for the gateway (`make serve`): uvicorn with HttpProtocol, shutting down
    with its calls settled (ShuttingDownServer) within gunicorn's --graceful-timeout."""

    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "http": HttpProtocol}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config.timeout_graceful_shutdown = max(self.cfg.graceful_timeout - SETTLE_SECONDS, 0)

    async def _serve(self) -> None:
        # UvicornWorker._serve, with ShuttingDownServer.
        self.config.app = self.wsgi
        server = ShuttingDownServer(config=self.config)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
