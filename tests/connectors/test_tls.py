"""The http connector over TLS with a client certificate, against a back end that demands one.

A throwaway CA signs the back end's certificate (for 127.0.0.1) and the platform's client
certificate; nothing here is a real key.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from channelhub.connectors.base import BackendUnavailable
from channelhub.connectors.http import HttpConnector
from channelhub.connectors.settings import ConnectorSettings, OperationSettings, TlsSettings


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_ca: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    ip: str | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
    else:
        assert issuer is not None
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    if ip is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("test bank CA", ca_key, None, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    client_key = ec.generate_private_key(ec.SECP256R1())
    stranger_key = ec.generate_private_key(ec.SECP256R1())
    signer = (ca.subject, ca_key)
    _write(folder / "ca.pem", ca, None)
    _write(folder / "server.pem", _issue("core", server_key, signer, ip="127.0.0.1"), server_key)
    _write(folder / "client.pem", _issue("channelhub", client_key, signer), client_key)
    _write(folder / "stranger.pem", _issue("stranger", stranger_key, None, ca=True), None)
    return Pki(
        ca=folder / "ca.pem",
        server_cert=folder / "server.pem",
        server_key=folder / "server.key",
        client_cert=folder / "client.pem",
        client_key=folder / "client.key",
        stranger_ca=folder / "stranger.pem",
    )


@pytest.fixture
async def tls_backend(pki: Pki) -> AsyncIterator[str]:
    """An https back end that demands a client certificate from the test CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
    context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    context.verify_mode = ssl.CERT_REQUIRED

    async def whoami(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        subject = dict(item[0] for item in peer["subject"]) if peer else {}
        return web.json_response({"client": subject.get("commonName")})

    app = web.Application()
    app.router.add_post("/whoami", whoami)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    await web.SockSite(runner, sock, ssl_context=context).start()
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def connector(url: str, tls: TlsSettings) -> HttpConnector:
    settings = ConnectorSettings(
        kind="http",
        url=url,
        tls=tls,
        operations={"whoami": OperationSettings(idempotent=True, path="/whoami")},
    )
    return HttpConnector.from_settings("core", settings)


async def test_the_client_certificate_is_presented(tls_backend: str, pki: Pki) -> None:
    client = connector(
        tls_backend,
        TlsSettings(ca_file=pki.ca, cert_file=pki.client_cert, key_file=pki.client_key),
    )
    assert client.ssl_context is not None
    try:
        assert await client.call("whoami", {}, timeout=10) == {"client": "channelhub"}
    finally:
        await client.close()


async def test_without_a_client_certificate_the_back_end_hangs_up(
    tls_backend: str, pki: Pki
) -> None:
    client = connector(tls_backend, TlsSettings(ca_file=pki.ca))
    try:
        with pytest.raises(BackendUnavailable):
            await client.call("whoami", {}, timeout=10)
    finally:
        await client.close()


async def test_a_back_end_signed_by_another_ca_is_refused(tls_backend: str, pki: Pki) -> None:
    client = connector(
        tls_backend,
        TlsSettings(ca_file=pki.stranger_ca, cert_file=pki.client_cert, key_file=pki.client_key),
    )
    try:
        with pytest.raises(BackendUnavailable) as caught:
            await client.call("whoami", {}, timeout=10)
    finally:
        await client.close()
    assert caught.value.details["reason"] == "tls"
    assert not caught.value.in_doubt
