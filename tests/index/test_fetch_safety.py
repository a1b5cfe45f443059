"""`index.sources.fetch`: what a URL typed by a stranger cannot make the bot do.

Refusals of private addresses must happen before any connection: these tests replace the
socket layer with one that fails the test if it is reached, and never send traffic anywhere
but the test server on 127.0.0.1 (allowed only through `allow_private`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpcore
import pytest
from web_double import WebDouble, gzip_bomb, page

from index.sources import fetch as fetch_module
from index.sources.fetch import Fetcher, FetchError, FetchPolicy, address_problem, check_url

LOCAL = FetchPolicy(allow_private=True, timeout=0.5, max_bytes=200_000)
PUBLIC_ONLY = FetchPolicy(allow_private=False, timeout=0.5, max_bytes=200_000)


@pytest.fixture(scope="module")
def web() -> Iterator[WebDouble]:
    with WebDouble() as w:
        w.add("/article", page("Harbour lights return", ["The harbour lights shine again."]))
        w.add("/slow", "late", delay=2.0)
        w.add("/endless", endless=True)
        w.add("/bomb", gzip_bomb(20_000_000), headers={"Content-Encoding": "gzip"})
        w.add("/big", b"x" * 300_000, content_type="text/plain")
        w.add("/image", b"\x89PNG\r\n", content_type="image/png")
        w.add("/report.pdf", b"%PDF-1.4 ...", content_type="application/octet-stream")
        w.add("/blob", b"%PDF-1.4 ...", content_type="application/octet-stream")
        w.add("/nothing-typed", b"<html></html>", content_type="")
        w.redirect("/loop-a", "/loop-b")
        w.redirect("/loop-b", "/loop-a")
        for i in range(7):
            w.redirect(f"/chain-{i}", f"/chain-{i + 1}")
        w.add("/chain-7", page("End of the chain", ["Seven hops away."]))
        w.redirect("/to-metadata", "http://169.254.169.254/latest/meta-data/")
        yield w


@pytest.fixture
def no_connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Fail the test if any connection is attempted; record what was tried."""
    tried: list[tuple[str, int]] = []

    def refuse(self, host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
        tried.append((host, port))
        raise AssertionError(f"a connection to {host}:{port} was attempted")

    monkeypatch.setattr(httpcore.SyncBackend, "connect_tcp", refuse)
    return tried


def reason(url: str, policy: FetchPolicy = LOCAL) -> str:
    with Fetcher(policy) as fetcher, pytest.raises(FetchError) as caught:
        fetcher.get(url)
    return caught.value.reason


def test_article_is_fetched_from_the_local_server_when_private_is_allowed(web: WebDouble) -> None:
    with Fetcher(LOCAL) as fetcher:
        got = fetcher.get(web.url("/article"))
    assert got.status == 200 and got.kind == "html"
    assert b"The harbour lights shine again." in got.body


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://10.0.0.1/admin", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::1]:8080/", "loopback"),
        ("http://127.0.0.1:9/", "loopback"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://[::ffff:192.168.1.1]/", "private"),
        ("http://100.64.0.1/", "non-public"),
        ("https://240.0.0.1/", "reserved"),
    ],
)
def test_private_addresses_are_refused_before_any_connection(
    no_connections: list[tuple[str, int]], url: str, words: str
) -> None:
    why = reason(url, PUBLIC_ONLY)
    assert words in why and "refused" in why and "FETCH_ALLOW_PRIVATE" in why
    assert no_connections == []


def test_a_name_resolving_to_a_private_address_is_refused(
    monkeypatch: pytest.MonkeyPatch, no_connections: list[tuple[str, int]]
) -> None:
    monkeypatch.setattr(fetch_module, "resolve", lambda host, port: ["192.168.0.10"])
    why = reason("http://intranet.example.com/wiki", PUBLIC_ONLY)
    assert "intranet.example.com (192.168.0.10)" in why and "private" in why
    assert no_connections == []


def test_dns_rebinding_cannot_switch_the_checked_address(
    monkeypatch: pytest.MonkeyPatch, no_connections: list[tuple[str, int]]
) -> None:
    """First answer public (for the pre-check), then private (for the connection): the
    connection checks what it connects to, so it is refused there, still before connecting."""
    answers = iter([["93.184.215.14"], ["10.1.2.3"]])
    monkeypatch.setattr(fetch_module, "resolve", lambda host, port: next(answers))
    why = reason("http://rebind.example.com/", PUBLIC_ONLY)
    assert "10.1.2.3" in why and "private" in why
    assert no_connections == []


def test_a_redirect_to_a_private_address_is_refused(web: WebDouble, monkeypatch) -> None:
    """The first hop is the test server (allowed for it alone); the second hop is checked."""
    real = fetch_module._host_addresses

    def only_loopback_allowed(host: str, port: int, policy: FetchPolicy) -> list[str]:
        allowed = host in ("127.0.0.1",)
        return real(host, port, LOCAL if allowed else PUBLIC_ONLY)

    monkeypatch.setattr(fetch_module, "_host_addresses", only_loopback_allowed)
    why = reason(web.url("/to-metadata"), PUBLIC_ONLY)
    assert "169.254.169.254" in why and "link-local" in why


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("file:///etc/passwd", "only http and https"),
        ("gopher://example.org/", "only http and https"),
        ("http://user:secret@example.org/", "user name or password"),
        ("http:///nohost", "no host"),
        ("http://exa mple.org/", "spaces"),
        ("", "empty"),
    ],
)
def test_urls_that_are_not_plain_http_are_refused(url: str, words: str) -> None:
    with pytest.raises(FetchError) as caught:
        check_url(url)
    assert words in caught.value.reason


def test_public_addresses_pass_the_check() -> None:
    assert address_problem("93.184.215.14") is None
    assert address_problem("2606:2800:21f:cb07:6820:80da:af6b:8b2c") is None
    assert address_problem("10.0.0.1") is not None


def test_404_is_reported(web: WebDouble) -> None:
    assert reason(web.url("/missing")) == "HTTP 404 Not Found"


def test_slow_response_times_out(web: WebDouble) -> None:
    started = time.monotonic()
    assert "timed out" in reason(web.url("/slow"))
    assert time.monotonic() - started < 1.8


def test_endless_body_is_cut_at_the_size_cap(web: WebDouble) -> None:
    assert "FETCH_MAX_BYTES" in reason(web.url("/endless"))


def test_declared_size_over_the_cap_is_refused_unread(web: WebDouble) -> None:
    assert "300,000 bytes" in reason(web.url("/big"))


def test_gzip_bomb_is_refused_while_inflating(web: WebDouble) -> None:
    import tracemalloc

    tracemalloc.start()
    try:
        why = reason(web.url("/bomb"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "decompresses to over FETCH_MAX_BYTES" in why
    assert peak < 5_000_000  # 20 MB of zeros never inflated


def test_redirect_loop_is_named(web: WebDouble) -> None:
    assert "redirect loop" in reason(web.url("/loop-a"))


def test_more_than_five_redirects_are_refused(web: WebDouble) -> None:
    assert "too many redirects" in reason(web.url("/chain-0"))
    with Fetcher(LOCAL) as fetcher:  # five hops are fine
        assert fetcher.get(web.url("/chain-2")).final_url == web.url("/chain-7")


def test_a_generically_typed_pdf_file_is_taken_as_a_pdf(web: WebDouble) -> None:
    with Fetcher(LOCAL) as fetcher:
        assert fetcher.get(web.url("/report.pdf")).kind == "pdf"


@pytest.mark.parametrize("path", ["/image", "/nothing-typed", "/blob"])
def test_wrong_content_type_is_refused(web: WebDouble, path: str) -> None:
    assert "is not an article" in reason(web.url(path))
