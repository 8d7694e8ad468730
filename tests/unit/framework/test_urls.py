"""Broker URLs: masking, describing targets and resolving the URLs an App connects to."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest

from burrowmq.exceptions import ConfigurationError
from burrowmq.framework.urls import DEFAULT_URL, default_urls, describe_target, mask_url, redact

pytestmark = pytest.mark.unit


class TestMaskUrl:
    """``mask_url`` hides the password and keeps everything else."""

    @pytest.mark.parametrize(
        ("url", "masked"),
        [
            ("amqp://user:secret@host:5672/vhost", "amqp://user:***@host:5672/vhost"),
            ("amqp://guest:guest@localhost/", "amqp://guest:***@localhost/"),
            (
                "amqps://user:secret@host/v?heartbeat=10#frag",
                "amqps://user:***@host/v?heartbeat=10#frag",
            ),
            ("amqp://user:secret@[::1]:5672/", "amqp://user:***@[::1]:5672/"),
            ("amqp://user:secret@[fe80::1]/", "amqp://user:***@[fe80::1]/"),
            ("amqp://us%40er:p%40ss%3Aw@host/v%2Fh", "amqp://us%40er:***@host/v%2Fh"),
            ("amqp://user:p@ss@host/", "amqp://user:***@host/"),
            ("amqp://:secret@host/", "amqp://:***@host/"),
            ("amqp://user:@host/", "amqp://user:***@host/"),
        ],
    )
    def test_password_is_masked(self, url: str, masked: str) -> None:
        """The password becomes ``***``; scheme, user, host, port, path and query stay."""
        assert mask_url(url) == masked

    @pytest.mark.parametrize(
        "url",
        [
            "amqp://host:5672/vhost",
            "amqp://user@host/",
            "amqp://[::1]:5672/",
            "memory://",
            "memory://shared",
            "",
        ],
    )
    def test_url_without_password_is_unchanged(self, url: str) -> None:
        """A URL that carries no password comes back exactly as given."""
        assert mask_url(url) == url

    @pytest.mark.parametrize("url", ["amqp://user:secret@[::1/", "amqp://user:secret@host:99999/"])
    def test_unparsable_url_is_hidden(self, url: str) -> None:
        """A URL that cannot be parsed comes back as ``<url>``, never with its password."""
        assert mask_url(url) == "<url>"

    @pytest.mark.parametrize(
        "url",
        [
            "amqp://user:secret@host/",
            "amqp://user:secret@[::1]/",
            "amqp://user:sec%2Fret@host/",
            "amqp://user:secret@[::1/",
        ],
    )
    def test_password_never_appears(self, url: str) -> None:
        """Whatever the URL, the masked form does not contain the password."""
        assert "secret" not in mask_url(url)
        assert "sec%2Fret" not in mask_url(url)

    def test_password_of_url_without_scheme_is_masked(self) -> None:
        """A URL missing its scheme still does not leak its password."""
        assert "secret" not in mask_url("guest:secret@rabbit:5672/")


class TestDescribeTarget:
    """``describe_target`` says where a URL connects, without the password."""

    @pytest.mark.parametrize(
        ("url", "described"),
        [
            ("amqp://user:secret@host:5673/vh", "host:5673 (vhost 'vh') as user 'user'"),
            ("amqp://host/", "host:5672 (vhost '/') as user 'guest'"),
            ("amqp://host", "host:5672 (vhost '/') as user 'guest'"),
            ("amqps://user:pw@host/", "host:5671 (vhost '/') as user 'user'"),
            ("amqp://us%40er:pw@host/v%2Fh", "host:5672 (vhost 'v/h') as user 'us@er'"),
            ("amqp://user:pw@host/%2F", "host:5672 (vhost '/') as user 'user'"),
            ("amqp:///", "localhost:5672 (vhost '/') as user 'guest'"),
            ("amqp://user:secret@[::1/", "<unparsable url>"),
        ],
    )
    def test_describes(self, url: str, described: str) -> None:
        """Host, port (default by scheme), unquoted vhost and user are named."""
        assert describe_target(url) == described

    def test_password_is_not_described(self) -> None:
        """The description never contains the password."""
        assert "secret" not in describe_target("amqp://user:secret@host/")

    def test_ipv6_host_is_bracketed(self) -> None:
        """An IPv6 host is written in brackets so the port stays distinguishable."""
        assert describe_target("amqp://user:pw@[::1]:5672/").startswith("[::1]:5672 ")


class TestDefaultUrls:
    """``default_urls`` resolves and checks the URLs an App connects to."""

    def test_default_without_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without a URL or ``$BURROWMQ_URL``, the local guest broker is used."""
        monkeypatch.delenv("BURROWMQ_URL", raising=False)
        assert default_urls(None) == (DEFAULT_URL,)
        assert DEFAULT_URL == "amqp://guest:guest@localhost:5672/"

    def test_env_var(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without a URL, ``$BURROWMQ_URL`` is used."""
        monkeypatch.setenv("BURROWMQ_URL", "amqp://svc:pw@rabbit:5672/prod")
        assert default_urls(None) == ("amqp://svc:pw@rabbit:5672/prod",)

    def test_empty_env_var_means_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An empty ``$BURROWMQ_URL`` counts as unset."""
        monkeypatch.setenv("BURROWMQ_URL", "")
        assert default_urls(None) == (DEFAULT_URL,)

    def test_explicit_url_wins_over_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A URL given explicitly is used even when ``$BURROWMQ_URL`` is set."""
        monkeypatch.setenv("BURROWMQ_URL", "amqp://env/")
        assert default_urls("amqp://given/") == ("amqp://given/",)

    def test_env_var_with_bad_scheme(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A ``$BURROWMQ_URL`` with an unknown scheme is refused like any other URL."""
        monkeypatch.setenv("BURROWMQ_URL", "http://rabbit/")
        with pytest.raises(ConfigurationError, match="scheme 'http'"):
            default_urls(None)

    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("amqp://a/", ("amqp://a/",)),
            ("amqps://a/", ("amqps://a/",)),
            ("memory://", ("memory://",)),
            (["amqp://a/", "amqp://b/", "amqps://c/"], ("amqp://a/", "amqp://b/", "amqps://c/")),
            (("amqp://a/",), ("amqp://a/",)),
            (["memory://", "memory://x"], ("memory://", "memory://x")),
        ],
    )
    def test_urls(self, url: str | Sequence[str], expected: tuple[str, ...]) -> None:
        """One URL or a list of them (cluster nodes, in order) comes back as a tuple."""
        assert default_urls(url) == expected

    @pytest.mark.parametrize("url", [[], ()])
    def test_empty_list(self, url: Sequence[str]) -> None:
        """An empty list of URLs is refused."""
        with pytest.raises(ConfigurationError, match="empty list"):
            default_urls(url)

    @pytest.mark.parametrize(
        ("url", "scheme"),
        [
            ("http://host/", "'http'"),
            ("amqp+ssl://host/", "'amqp+ssl'"),
            ("localhost:5672", "'localhost'"),
            ("", "''"),
            (["amqp://a/", "redis://b/"], "'redis'"),
        ],
    )
    def test_bad_scheme(self, url: str | Sequence[str], scheme: str) -> None:
        """A URL whose scheme is not amqp, amqps or memory is refused, naming the scheme."""
        with pytest.raises(ConfigurationError, match=re.escape(f"has scheme {scheme}")):
            default_urls(url)

    def test_bad_scheme_message_masks_the_password(self) -> None:
        """The error about a bad scheme does not reveal the URL's password."""
        with pytest.raises(ConfigurationError) as info:
            default_urls("http://user:secret@host/")
        assert "secret" not in str(info.value)
        assert "user:***@host" in str(info.value)

    def test_unparsable_url(self) -> None:
        """A URL that cannot be parsed is refused without echoing it."""
        with pytest.raises(ConfigurationError, match="cannot parse broker URL") as info:
            default_urls(["amqp://user:secret@[::1/"])
        assert "secret" not in str(info.value)

    def test_url_without_scheme_does_not_leak_password(self) -> None:
        """A URL missing its scheme is refused without revealing its password."""
        with pytest.raises(ConfigurationError) as info:
            default_urls("guest:secret@rabbit:5672/")
        assert "secret" not in str(info.value)

    @pytest.mark.parametrize(
        "urls",
        [
            ["memory://", "amqp://host/"],
            ["amqp://host/", "memory://"],
            ["amqps://host/", "memory://x"],
        ],
    )
    def test_memory_mixed_with_amqp(self, urls: list[str]) -> None:
        """``memory://`` cannot be one of several URLs that include amqp ones."""
        with pytest.raises(ConfigurationError, match="cannot be mixed"):
            default_urls(urls)


class TestBadPorts:
    @pytest.mark.parametrize(
        "url", ["amqp://guest:secret@127.0.0.1:99999/", "amqp://guest:secret@host:port/"]
    )
    def test_bad_port_is_a_configuration_error_without_the_password(self, url: str) -> None:
        """A URL whose port is out of range or not a number is refused up front, password hidden."""
        with pytest.raises(ConfigurationError, match="cannot parse broker URL") as caught:
            default_urls(url)
        assert "secret" not in str(caught.value)


class TestRedact:
    """Credentials in any text are masked before burrowmq passes the text on."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            (
                "could not connect to postgresql://app:s3cr3t@db:5432/x",
                "could not connect to postgresql://app:***@db:5432/x",
            ),
            ("login failed: password=hunter2 user=app", "login failed: password=*** user=app"),
            ('PWD="two words" then', "PWD=*** then"),
            ("token: abc123, next", "token: ***, next"),
            ("api_key=K1&secret=S2", "api_key=***&secret=***"),
            ("redis://:onlypass@cache:6379/0", "redis://:***@cache:6379/0"),
            ("nothing secret at http://host/path?q=1", "nothing secret at http://host/path?q=1"),
        ],
    )
    def test_masks(self, text: str, expected: str) -> None:
        """URL passwords and password/token/secret/key pairs are masked; the rest is kept."""
        assert redact(text) == expected
