"""The gateway as `make serve` runs it, facing clients with no proxy in front: it bounds what a
request may send before the gateway reads it (the size, number and pace of its headers; the size
of its body), keeps answering others meanwhile, and runs with the production settings of the
README (HTTPS, HSTS, secure cookies, DEBUG off)."""

import json
import socket
import subprocess
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import httpx2 as httpx
import pytest

from tests.live_server import make_serve, make_serve_process, stop_process_group

ROOT = Path(__file__).resolve().parent.parent.parent

# The settings the README's "Production" section gives for a gateway served over HTTPS.
PRODUCTION_ENV = {
    "SECRET_KEY": "production-like-secret-key-for-tests-0123456789-abcdefghijklmnop",
    "ALLOWED_HOSTS": "gateway.example.com,127.0.0.1",
    "SECURE_SSL_REDIRECT": "1",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "SECURE_HSTS_PRELOAD": "1",
    "SESSION_COOKIE_SECURE": "1",
    "CSRF_COOKIE_SECURE": "1",
}
BODY_LIMIT = 1024 * 1024
HTTPS = {"X-Forwarded-Proto": "https"}  # as the TLS proxy on 127.0.0.1 says it


@pytest.fixture(scope="module")
def production(tmp_path_factory) -> Iterator[str]:
    env = {**PRODUCTION_ENV, "MAX_REQUEST_BODY_BYTES": str(BODY_LIMIT), "REQUEST_HEADER_TIMEOUT_SECONDS": "1"}
    with make_serve(env, tmp_path_factory.mktemp("serve")) as url:
        yield url


def connect(url: str) -> socket.socket:
    address = urlparse(url)
    return socket.create_connection((address.hostname, address.port), timeout=30)


def exchange(url: str, chunks: Iterable[bytes]) -> bytes:
    """Send `chunks` until the server hangs up, then read its whole answer."""
    with connect(url) as sock:
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except OSError:
            pass  # the server stopped reading
        return read_answer(sock)


def read_answer(sock: socket.socket) -> bytes:
    answer = b""
    try:
        while data := sock.recv(65536):
            answer += data
    except ConnectionResetError:
        pass  # what the server wrote before it hung up was read first
    return answer


def status_and_body(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def head(path: str = "/v1/models", *headers: bytes, method: bytes = b"GET") -> bytes:
    lines = [method + b" " + path.encode() + b" HTTP/1.1", b"Host: 127.0.0.1", *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def header_of(size: int) -> Iterator[bytes]:
    """A request whose one header is `size` bytes long, sent in 64 KB pieces."""
    yield b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
    piece = b"a" * 65536
    for _ in range(size // len(piece)):
        yield piece
    yield b"\r\n\r\n"


def test_a_megabyte_header_is_refused_with_a_json_431(production):
    status, body = status_and_body(exchange(production, header_of(1024 * 1024)))
    assert status == 431
    assert body["error"]["type"] == "request_header_too_large"


def test_a_flood_of_huge_headers_leaves_the_worker_answering_others(production):
    # Six clients each start a 50 MB header at the server's one worker.
    with ThreadPoolExecutor(6) as pool:
        floods = [pool.submit(exchange, production, header_of(50 * 1024 * 1024)) for _ in range(6)]
        assert httpx.get(f"{production}/healthz", timeout=10).status_code == 200
        answers = [flood.result() for flood in floods]
    assert all(answer.startswith(b"HTTP/1.1 431 ") for answer in answers)
    assert httpx.get(f"{production}/v1/models", headers=HTTPS, timeout=10).status_code == 401


def test_more_than_a_hundred_headers_are_refused(production):
    headers = [b"X-Header-%d: 1" % number for number in range(150)]
    status, body = status_and_body(exchange(production, [head("/healthz", *headers)]))
    assert status == 431
    assert "100 headers" in body["error"]["message"]


def test_headers_within_the_limits_pass(production):
    answer = exchange(production, [head("/healthz", b"X-Large: " + b"a" * 40_000, b"Connection: close")])
    assert answer.startswith(b"HTTP/1.1 200 ")


def test_a_client_that_never_finishes_its_headers_is_hung_up_on(production):
    with connect(production) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
        assert read_answer(sock) == b""  # closed by the server, no answer


def test_a_connection_that_sends_nothing_is_closed(production):
    with connect(production) as sock:
        assert read_answer(sock) == b""


def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(production):
    request = head("/v1/chat/completions", b"Content-Length: 10000000000", method=b"POST")
    status, body = status_and_body(exchange(production, [request]))  # not a byte of the body
    assert status == 413
    assert body["error"]["type"] == "request_too_large"
    assert "10000000000" in body["error"]["message"]


def test_a_chunked_body_is_read_up_to_the_limit_only(production):
    piece = b"a" * 65536
    ceiling = 64 * BODY_LIMIT
    with connect(production) as sock:
        sock.sendall(head("/v1/chat/completions", b"Transfer-Encoding: chunked", method=b"POST"))
        sent = 0
        try:
            while sent < ceiling:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                sent += len(piece)
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server hung up
        status, body = status_and_body(read_answer(sock))
    assert status == 413
    assert body["error"]["type"] == "request_too_large"
    assert sent < ceiling  # the server stopped reading long before the end


def test_over_https_every_answer_carries_hsts_and_plain_http_is_redirected(production):
    for path in ("/v1/models", "/api/me/", "/admin/login/"):
        response = httpx.get(f"{production}{path}", headers=HTTPS, timeout=10)
        assert response.status_code in (200, 401), path
        assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"

        plain = httpx.get(f"{production}{path}", timeout=10)
        assert plain.status_code == 301, path
        assert plain.headers["Location"] == f"https://{urlparse(production).netloc}{path}"


def test_the_admins_cookies_are_sent_over_https_only(production):
    response = httpx.get(f"{production}/admin/login/", headers=HTTPS, timeout=10)
    assert response.status_code == 200
    assert "; Secure" in response.headers["Set-Cookie"]


def test_the_production_settings_pass_djangos_deployment_checks():
    """A copy of .env.example with the README's production settings: no warning at all."""
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **env_example(), **PRODUCTION_ENV},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def env_example() -> dict[str, str]:
    """.env.example as the settings read a copy of it."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def test_make_serve_refuses_to_start_with_debug_on(tmp_path):
    process, _ = make_serve_process({"DEBUG": "1", "SECRET_KEY": PRODUCTION_ENV["SECRET_KEY"]}, tmp_path)
    try:
        returncode = process.wait(60)
    finally:
        stop_process_group(process)
    assert returncode != 0
    assert "DEBUG is on" in (tmp_path / "serve.log").read_text()
    assert not (tmp_path / "db.sqlite3").exists()  # it did not even migrate
