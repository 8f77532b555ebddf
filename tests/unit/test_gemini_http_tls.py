"""The thin HTTP path over TLS (as to the real Gemini API): the server's certificate is checked against the trust the
SDK's own client uses (SSL_CERT_FILE here), and the request on the wire is the SDK's; an untrusted server fails the
same way through both."""
from __future__ import annotations

import datetime
import ipaddress
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from backend.errors import ProviderConnectionError, ProviderError
from backend.providers.gemini import GeminiClient
from backend.providers.gemini_errors import map_failure
from backend.schemas.answers import WritingAnalysis
from tests.conftest import FAKE_PROVIDER_KEY
from tests.unit.gemini_wire_server import WireServer

PROMPT = "Analyse: ok."


def certificate(subject: str, key, issuer: x509.Certificate | None = None, issuer_key=None, ca: bool = False):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer.subject if issuer else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                                                         subject)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(
            "127.0.0.1"))]), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


@pytest.fixture
def tls_wire(tmp_path):
    """A WireServer with a certificate for 127.0.0.1 from a CA of its own, and that CA's file."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate("test CA", ca_key, ca=True)
    leaf = certificate("127.0.0.1", key, issuer=ca, issuer_key=ca_key)
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem")
    server = WireServer(tls=context)
    yield server, str(tmp_path / "ca.pem")
    server.stop()


def gemini(server: WireServer, host: str = "127.0.0.1") -> GeminiClient:
    return GeminiClient(api_key=FAKE_PROVIDER_KEY, model="gemini-2.5-flash", timeout_seconds=5.0,
                        base_url=server.base_url.replace("127.0.0.1", host))


def sdk_call(client: GeminiClient):
    config = client._config("tutor", WritingAnalysis, 5.0 + client.input_seconds(PROMPT))
    return client._sdk().models.generate_content(model=client.model, contents=PROMPT, config=config)


def test_a_trusted_server_is_reached_over_kept_alive_tls_as_the_sdk_reaches_it(tls_wire, monkeypatch):
    server, ca_file = tls_wire
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)  # the trust the SDK's client is built with
    client = gemini(server)
    for _ in range(2):
        assert client.generate_json(system="tutor", prompt=PROMPT, schema=WritingAnalysis).text == "Hello there."
    assert client._templates._http[1] is not None and [s.connection for s in server.seen] == [1, 1]
    sdk_call(client)
    assert server.seen[-1].header_set() == server.seen[0].header_set()
    client.close()


@pytest.mark.parametrize("trusted_ca, host", [(False, "127.0.0.1"),  # a CA nobody trusts
                                               (True, "localhost")])  # a trusted certificate for another name
def test_an_unverified_server_fails_as_through_the_sdk(tls_wire, monkeypatch, trusted_ca, host):
    server, ca_file = tls_wire
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    if trusted_ca:
        monkeypatch.setenv("SSL_CERT_FILE", ca_file)
    else:
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    client = gemini(server, host)
    with pytest.raises(ProviderConnectionError) as ours:
        client.generate_json(system="tutor", prompt=PROMPT, schema=WritingAnalysis)
    assert client._templates._http[1] is not None
    with pytest.raises(Exception) as sdk:  # noqa: B017 - mapped below
        sdk_call(client)
    theirs: ProviderError = map_failure(sdk.value, seconds=5.0)
    assert (type(ours.value), ours.value.message) == (type(theirs), theirs.message)
    assert type(ours.value.__cause__) is type(sdk.value) and server.seen == []  # nothing was sent
    client.close()
