"""TLS against a private node with a CA made in the test: verified connect and round trip,
refusals (another CA, a host name mismatch, no client certificate) with clear errors, a
passphrase-protected client key, mutual TLS."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from burrowmq import TLS, App, BrokerUnreachable, ConfigurationError, Router
from tests.conftest import IN_CI
from tests.faults.node import RabbitNode, can_run_nodes

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]

KEY_PASSWORD = "correct horse battery staple"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert), cwd=folder)  # fmt: skip
    return key, cert


def _issue(
    folder: Path, ca: tuple[Path, Path], name: str, san: str, *, password: str | None = None
) -> tuple[Path, Path]:
    """A certificate for ``name`` signed by ``ca``; its key encrypted with ``password``."""
    key, csr, cert = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.pem"
    if password is None:
        _openssl("genrsa", "-out", str(key), "2048", cwd=folder)
    else:
        _openssl("genrsa", "-aes256", "-passout", f"pass:{password}", "-out", str(key), "2048",
                 cwd=folder)  # fmt: skip
    passin = [] if password is None else ["-passin", f"pass:{password}"]
    _openssl("req", "-new", "-key", str(key), *passin, "-subj", f"/CN={name}", "-out", str(csr),
             cwd=folder)  # fmt: skip
    extensions = folder / f"{name}.ext"
    extensions.write_text(f"subjectAltName = {san}\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[1]), "-CAkey", str(ca[0]),
             "-CAcreateserial", "-days", "2", "-extfile", str(extensions), "-out", str(cert),
             cwd=folder)  # fmt: skip
    return key, cert


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Pki:
    """A CA, the broker's certificate (for DNS:localhost only), a client's, another CA."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ca = _make_ca(folder, "test-ca")
        self.other_ca = _make_ca(folder, "other-ca")
        self.server = _issue(folder, self.ca, "localhost", "DNS:localhost")
        self.client = _issue(folder, self.ca, "svc", "DNS:svc", password=KEY_PASSWORD)


@pytest.fixture(scope="module")
def tls_node() -> Iterator[tuple[RabbitNode, Pki, int]]:
    """A private node with a TLS listener that requires client certificates."""
    reason = can_run_nodes() or (None if shutil.which("openssl") else "openssl is not installed")
    if reason is not None:
        if IN_CI:
            pytest.fail(f"the TLS test cannot run: {reason}")
        pytest.skip(reason)
    # Not under pytest's tmp_path: the rabbitmq user must be able to reach the files.
    folder = Path(tempfile.mkdtemp(prefix="burrowmq-pki-"))
    pki = Pki(folder)
    user = pwd.getpwnam("rabbitmq")
    folder.chmod(0o755)
    for path in folder.iterdir():
        os.chown(path, user.pw_uid, user.pw_gid)
        path.chmod(0o600 if path.suffix == ".key" else 0o644)
    port = _free_port()
    node = RabbitNode(
        conf=[
            f"listeners.ssl.default = 127.0.0.1:{port}",
            f"ssl_options.cacertfile = {pki.ca[1]}",
            f"ssl_options.certfile = {pki.server[1]}",
            f"ssl_options.keyfile = {pki.server[0]}",
            "ssl_options.verify = verify_peer",
            "ssl_options.fail_if_no_peer_cert = true",
        ]
    )
    try:
        node.start()
        yield node, pki, port
    finally:
        node.remove()
        shutil.rmtree(folder, ignore_errors=True)


def _tls(pki: Pki, **overrides: Any) -> TLS:
    settings: dict[str, Any] = {
        "ca_file": pki.ca[1],
        "cert_file": pki.client[1],
        "key_file": pki.client[0],
        "key_password": KEY_PASSWORD,
    }
    settings.update(overrides)
    return TLS(**settings)


class TestTls:
    """burrowmq over TLS with its own CA."""

    async def test_mutual_tls_round_trip(self, tls_node: tuple[RabbitNode, Pki, int]) -> None:
        """With the CA, a client certificate and its passphrase-protected key, a message goes round."""
        _, pki, port = tls_node
        got: asyncio.Queue[int] = asyncio.Queue()
        router = Router()

        @router.consume("tls.jobs", queue_options={})
        async def job(body: dict[str, int]) -> None:
            got.put_nowait(body["n"])

        app = App([router], url=f"amqps://guest:guest@localhost:{port}/", tls=_tls(pki))
        async with app:
            await app.publish("", {"n": 7}, routing_key="tls.jobs")
            assert await asyncio.wait_for(got.get(), 20) == 7
            assert await app.transport.consumer_count("tls.jobs") == 1
            await app.transport.delete_queue("tls.jobs")
            await app.transport.delete_queue("tls.jobs.dlq")
            await app.transport.delete_exchange("tls.jobs.dlx")

    async def test_another_ca_is_refused(self, tls_node: tuple[RabbitNode, Pki, int]) -> None:
        """A broker certificate from a CA the client does not trust fails, saying so."""
        _, pki, port = tls_node
        app = App(
            url=f"amqps://guest:guest@localhost:{port}/", tls=_tls(pki, ca_file=pki.other_ca[1])
        )
        with pytest.raises(BrokerUnreachable) as caught:
            await app.start()
        text = str(caught.value)
        assert "signed by a CA this client does not trust" in text, text
        assert "None" not in text and "guest:guest" not in text

    async def test_host_name_mismatch_is_refused(
        self, tls_node: tuple[RabbitNode, Pki, int]
    ) -> None:
        """Connecting by IP to a certificate for localhost fails, saying so; server_hostname fixes it."""
        _, pki, port = tls_node
        app = App(url=f"amqps://guest:guest@127.0.0.1:{port}/", tls=_tls(pki))
        with pytest.raises(BrokerUnreachable) as caught:
            await app.start()
        assert "not valid for this host name" in str(caught.value), str(caught.value)
        named = App(
            url=f"amqps://guest:guest@127.0.0.1:{port}/",
            tls=_tls(pki, server_hostname="localhost"),
        )
        async with named:
            assert named.transport.is_connected

    async def test_missing_client_certificate_is_refused(
        self, tls_node: tuple[RabbitNode, Pki, int]
    ) -> None:
        """Without a client certificate the broker refuses; the error says a certificate is required."""
        _, pki, port = tls_node
        app = App(
            url=f"amqps://guest:guest@localhost:{port}/",
            tls=TLS(ca_file=pki.ca[1]),
            connect_timeout=10,
        )
        with pytest.raises(BrokerUnreachable) as caught:
            await app.start()
        text = str(caught.value)
        # Under TLS 1.3 the broker's "certificate required" alert follows the handshake and
        # can be overtaken by the connection reset; either way the error names the cause.
        assert (
            "client certificate" in text
            or "certificate required" in text.lower()
            or "sends no certificate" in text
        ), text

    def test_wrong_key_password_and_plain_url_are_configuration_errors(
        self, tls_node: tuple[RabbitNode, Pki, int]
    ) -> None:
        """A wrong key password and tls= with an amqp:// URL fail before connecting, clearly."""
        _, pki, port = tls_node
        with pytest.raises(ConfigurationError, match="cannot load the client certificate"):
            App(url=f"amqps://localhost:{port}/", tls=_tls(pki, key_password="wrong"))
        with pytest.raises(ConfigurationError, match="needs amqps://"):
            App(url=f"amqp://localhost:{port}/", tls=_tls(pki))
        assert KEY_PASSWORD not in repr(_tls(pki))
