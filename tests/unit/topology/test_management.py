"""Tests for the management API client's addressing and error translation."""

from __future__ import annotations

import socket

import pytest

from burrowmq import ConfigurationError, TransportError
from burrowmq.topology.management import ManagementClient

pytestmark = pytest.mark.unit


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestAddressing:
    """Host, credentials and vhost come from the AMQP URL unless overridden."""

    def test_derived_from_amqp_url(self) -> None:
        """Port 15672 on the broker's host, the URL's user and vhost."""
        client = ManagementClient("amqp://alice:s3cret@rabbit.example:5672/shop%2Feu")
        assert client.description == "http://rabbit.example:15672 as user 'alice'"
        assert client.vhost == "shop/eu"

    def test_tls_and_default_vhost(self) -> None:
        """amqps:// means https on 15671; no path means vhost '/'."""
        client = ManagementClient("amqps://bob:pw@rabbit.example")
        assert client.description == "https://rabbit.example:15671 as user 'bob'"
        assert client.vhost == "/"

    def test_management_url_overrides(self) -> None:
        """--management-url sets the address, and the credentials when it has them."""
        client = ManagementClient(
            "amqp://alice:pw@rabbit/", management_url="http://admin:pw2@mgmt:8080/"
        )
        assert client.description == "http://mgmt:8080 as user 'admin'"

    def test_bad_management_url(self) -> None:
        """A management URL that is not http(s) is a configuration error, masked."""
        with pytest.raises(ConfigurationError) as caught:
            ManagementClient("amqp://a:b@h/", management_url="ftp://u:topsecret@h/")
        assert "topsecret" not in str(caught.value)


class TestErrors:
    """Failures become TransportError and never show a password."""

    async def test_unreachable(self) -> None:
        """A closed port says where it tried and how to fix it, without the password."""
        port = _free_port()
        client = ManagementClient(
            "amqp://guest:topsecret@127.0.0.1/", management_url=f"http://127.0.0.1:{port}"
        )
        with pytest.raises(TransportError) as caught:
            await client.list("queues")
        message = str(caught.value)
        assert f"127.0.0.1:{port}" in message
        assert "rabbitmq_management" in message
        assert "topsecret" not in message
