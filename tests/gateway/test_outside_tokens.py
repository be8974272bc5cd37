"""RS256 tokens from an outside identity provider, with a key pair made here.

The verifying key comes either from JWT_VERIFYING_KEY (PEM) or from JWT_JWKS_URL, which a
tiny HTTP server on 127.0.0.1 serves.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth import get_user_model
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError

from accounts import credentials as auth
from accounts.models import OutsideIdentity
from tests import factories

pytestmark = pytest.mark.django_db

ISSUER = "https://idp.example.com/"
AUDIENCE = "llm-gateway"


def make_key_pair():
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public_pem


@pytest.fixture(scope="module")
def idp_key():
    return make_key_pair()


@pytest.fixture(scope="module")
def other_key():
    return make_key_pair()


@pytest.fixture(autouse=True)
def _fresh_jwks_client():
    auth._jwks_client.cache_clear()
    yield
    auth._jwks_client.cache_clear()


@pytest.fixture
def idp_settings(settings, idp_key):
    _, public_pem = idp_key
    settings.JWT_ISSUER = ISSUER
    settings.JWT_AUDIENCE = AUDIENCE
    settings.JWT_VERIFYING_KEY = public_pem
    settings.JWT_JWKS_URL = ""
    return settings


def outside_token(private_key, *, kid=None, **overrides) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "carol",
        "email": "carol@example.com",
        "iat": now,
        "exp": now + 300,
    }
    claims.update(overrides)
    claims = {key: value for key, value in claims.items() if value is not None}
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, private_key, algorithm="RS256", headers=headers)


def get_me(client, token):
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.get("/api/me/")


def error_message(response, status=401):
    assert response.status_code == status, response.content
    return response.json()["error"]["message"]


def test_it_accepts_an_idp_token_and_makes_an_account_of_its_own_on_first_sight(idp_settings, idp_key, anon_client):
    response = get_me(anon_client, outside_token(idp_key[0]))
    assert response.status_code == 200, response.content
    me = response.json()
    assert me["username"].startswith("carol#")
    assert me["email"] == "carol@example.com"
    assert me["is_staff"] is False
    identity = OutsideIdentity.objects.get(issuer=ISSUER, subject="carol")
    assert identity.user_id == me["id"]
    assert not identity.user.has_usable_password()

    # Second sight: the same account, not a new one.
    assert get_me(anon_client, outside_token(idp_key[0])).json()["id"] == me["id"]
    assert OutsideIdentity.objects.count() == 1


def test_an_idp_token_never_signs_in_as_the_local_account_of_that_name(idp_settings, idp_key, anon_client):
    root = factories.make_user("root", superuser=True)
    response = get_me(anon_client, outside_token(idp_key[0], sub="root", preferred_username="root"))
    assert response.status_code == 200, response.content
    assert response.json()["id"] != root.id
    assert response.json()["is_staff"] is False
    assert get_user_model().objects.filter(username="root").count() == 1


def test_the_account_name_cannot_be_one_a_local_account_may_take(idp_settings, idp_key, anon_client):
    """Django's username validator refuses what follows the name, so the admin or createsuperuser
    can never make a local account an identity would land on."""
    username = get_me(anon_client, outside_token(idp_key[0], sub="bob")).json()["username"]
    with pytest.raises(ValidationError):
        UnicodeUsernameValidator()(username)


def test_subjects_that_differ_only_far_along_are_two_accounts(idp_settings, idp_key, anon_client):
    first = get_me(anon_client, outside_token(idp_key[0], sub="a" * 150 + "x" * 100)).json()
    second = get_me(anon_client, outside_token(idp_key[0], sub="a" * 150 + "y" * 100)).json()
    assert first["id"] != second["id"]
    assert first["username"] != second["username"]


@pytest.mark.parametrize("subject", ["", "a" * 256, "car\x00ol"], ids=["empty", "too long", "NUL"])
def test_it_refuses_a_subject_it_cannot_keep(idp_settings, idp_key, anon_client, subject):
    message = error_message(get_me(anon_client, outside_token(idp_key[0], sub=subject)))
    assert message == "Token subject is not accepted: it must be 1 to 255 characters, without NUL."
    assert not OutsideIdentity.objects.exists()
    assert get_user_model().objects.count() == 0


@pytest.mark.parametrize("email", ["a" * 250 + "@example.com", "not an address", 42], ids=["long", "invalid", "number"])
def test_it_signs_in_without_an_email_it_cannot_keep(idp_settings, idp_key, anon_client, email):
    response = get_me(anon_client, outside_token(idp_key[0], email=email))
    assert response.status_code == 200, response.content
    assert response.json()["email"] == ""


def test_it_refuses_an_idp_token_for_an_inactive_user(idp_settings, idp_key, anon_client):
    get_me(anon_client, outside_token(idp_key[0]))
    get_user_model().objects.filter(outside_identities__subject="carol").update(is_active=False)
    response = get_me(anon_client, outside_token(idp_key[0]))
    assert error_message(response) == "This user is inactive."


def test_it_rejects_an_expired_idp_token(idp_settings, idp_key, anon_client):
    past = int(time.time()) - 600
    token = outside_token(idp_key[0], iat=past - 300, exp=past)
    assert error_message(get_me(anon_client, token)) == "Token has expired."


def test_it_rejects_an_idp_token_for_another_audience(idp_settings, idp_key, anon_client):
    token = outside_token(idp_key[0], aud="some-other-service")
    assert error_message(get_me(anon_client, token)) == "Token audience is not accepted."


def test_it_rejects_an_idp_token_without_an_audience(idp_settings, idp_key, anon_client):
    token = outside_token(idp_key[0], aud=None)
    assert error_message(get_me(anon_client, token)) == "Token lacks the required 'aud' claim."


def test_it_rejects_an_idp_token_without_an_expiry(idp_settings, idp_key, anon_client):
    token = outside_token(idp_key[0], exp=None)
    assert error_message(get_me(anon_client, token)) == "Token lacks the required 'exp' claim."


def test_it_rejects_a_token_from_another_issuer(idp_settings, idp_key, anon_client):
    token = outside_token(idp_key[0], iss="https://evil.example.com/")
    message = error_message(get_me(anon_client, token))
    assert message == "Token issuer 'https://evil.example.com/' is not accepted."


def test_it_rejects_a_token_signed_by_another_key(idp_settings, other_key, anon_client):
    token = outside_token(other_key[0])
    assert error_message(get_me(anon_client, token)) == "Token signature is invalid."


def test_it_rejects_a_tampered_idp_token(idp_settings, idp_key, anon_client):
    header, _, signature = outside_token(idp_key[0]).split(".")
    _, admin_payload, _ = outside_token(idp_key[0], sub="root").split(".")
    token = f"{header}.{admin_payload}.{signature}"
    assert error_message(get_me(anon_client, token)) == "Token signature is invalid."
    assert not get_user_model().objects.filter(username="root").exists()


def test_it_rejects_an_unsigned_token_claiming_the_idp_issuer(idp_settings, anon_client):
    now = int(time.time())
    token = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "carol", "exp": now + 300}, None, algorithm="none")
    message = error_message(get_me(anon_client, token))
    assert message == "Unsigned tokens (alg 'none') are not accepted."
    assert not get_user_model().objects.filter(username="carol").exists()


def test_it_rejects_an_hmac_token_claiming_the_idp_issuer(idp_settings, anon_client):
    """Algorithm confusion: an HS256 token must not pass as the IdP's RS256."""
    now = int(time.time())
    token = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "carol", "exp": now + 300},
        "a-guessable-shared-secret-0123456789abcdef",
        algorithm="HS256",
    )
    assert get_me(anon_client, token).status_code == 401
    assert not get_user_model().objects.filter(username="carol").exists()


def test_it_refuses_idp_tokens_when_no_issuer_is_configured(settings, idp_key, anon_client):
    settings.JWT_ISSUER = ""
    settings.JWT_VERIFYING_KEY = ""
    settings.JWT_JWKS_URL = ""
    message = error_message(get_me(anon_client, outside_token(idp_key[0])))
    assert message == f"Token issuer {ISSUER!r} is not accepted."


# --- JWKS ---------------------------------------------------------------------------------


@pytest.fixture
def jwks_server(idp_key):
    """Serves the IdP's public key as a JWK set at http://127.0.0.1:<port>/jwks.json."""
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(idp_key[0].public_key()))
    jwk.update({"kid": "idp-key-1", "use": "sig", "alg": "RS256"})
    body = json.dumps({"keys": [jwk]}).encode()
    hits = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            if self.path != "/jwks.json":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    server.hits = hits
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def jwks_settings(settings, jwks_server):
    settings.JWT_ISSUER = ISSUER
    settings.JWT_AUDIENCE = AUDIENCE
    settings.JWT_VERIFYING_KEY = ""
    settings.JWT_JWKS_URL = jwks_server.url
    return settings


def test_it_accepts_an_idp_token_verified_through_jwks(jwks_settings, jwks_server, idp_key, anon_client):
    response = get_me(anon_client, outside_token(idp_key[0], kid="idp-key-1", sub="dave"))
    assert response.status_code == 200, response.content
    assert response.json()["username"].startswith("dave#")
    assert jwks_server.hits == ["/jwks.json"]

    # The key set is cached: a second request does not fetch it again.
    assert get_me(anon_client, outside_token(idp_key[0], kid="idp-key-1")).status_code == 200
    assert jwks_server.hits == ["/jwks.json"]


def test_it_rejects_a_jwks_token_with_an_unknown_key_id(jwks_settings, idp_key, anon_client):
    token = outside_token(idp_key[0], kid="not-a-published-key")
    message = error_message(get_me(anon_client, token))
    assert message.startswith("Token signing key not found")


def test_it_rejects_a_jwks_token_signed_by_another_key(jwks_settings, other_key, anon_client):
    token = outside_token(other_key[0], kid="idp-key-1")
    assert error_message(get_me(anon_client, token)) == "Token signature is invalid."


def test_it_answers_401_not_500_when_the_jwks_url_is_down(settings, idp_key, anon_client):
    # A port nothing listens on: bind one, note it, close it.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.JWT_ISSUER = ISSUER
    settings.JWT_AUDIENCE = AUDIENCE
    settings.JWT_VERIFYING_KEY = ""
    settings.JWT_JWKS_URL = f"http://127.0.0.1:{port}/jwks.json"
    message = error_message(get_me(anon_client, outside_token(idp_key[0], kid="idp-key-1")))
    assert message.startswith("Token signing key not found")
