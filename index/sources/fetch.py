"""The one way this project fetches a URL, with the checks a URL typed by a stranger needs.

A Discord member can make the bot fetch a URL, so every fetch assumes the URL is hostile:

- only `http` and `https`, no user name or password in the URL;
- SSRF: the host is resolved and every address it resolves to is checked (loopback,
  private, link-local, multicast, reserved, unspecified, shared and other non-global
  addresses are refused) before any connection, on every redirect hop, unless
  `allow_private`. The check runs inside the connection itself (`_CheckedBackend`), which
  then connects to the very address it checked, so a name that resolves to a public address
  for the check and to a private one for the connection (DNS rebinding) gains nothing;
- at most `max_redirects` redirects, a redirect loop is named as such;
- connect and read timeouts, and a deadline for the whole transfer (a server that trickles
  one byte a second never times out a read);
- the body is streamed and cut at `max_bytes`, never read whole first, and a compressed body
  is inflated incrementally and cut at `max_bytes` too (a gzip bomb of a few kilobytes must
  not inflate to gigabytes);
- only the content types an article can come from: HTML, XHTML, XML feeds and sitemaps,
  PDF and plain text.

Every refusal is a `FetchError` whose message is one line written for the person who asked.
Proxies from the environment are ignored: the address check must be about the address the
bot connects to.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
USER_AGENT = "article-qa-bot/0.1 (+https://github.com/; fetches articles on request)"
DEADLINE_FACTOR = 4  # a whole transfer may take this many read timeouts
READ_BLOCK = 64 * 1024
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

# Media types an article, a feed or a sitemap comes as.
CONTENT_TYPES: dict[str, str] = {
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/rss+xml": "xml",
    "application/atom+xml": "xml",
    "application/rdf+xml": "xml",
    "application/xml": "xml",
    "text/xml": "xml",
    "application/pdf": "pdf",
    "application/x-pdf": "pdf",
    "text/plain": "text",
}
_GENERIC_BINARY = frozenset({"application/octet-stream", "binary/octet-stream"})
ACCEPT = (
    "text/html,application/xhtml+xml,application/rss+xml,application/atom+xml,"
    "application/xml;q=0.9,text/xml;q=0.9,application/pdf;q=0.8,text/plain;q=0.5"
)


class FetchError(Exception):
    """A URL that was not fetched, with the reason in one line fit for users."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """The limits of one fetch; built from the settings (`FETCH_*`) by the callers."""

    allow_private: bool = False
    timeout: float = 10.0
    max_bytes: int = 20_000_000
    max_redirects: int = MAX_REDIRECTS
    user_agent: str = USER_AGENT


@dataclass(frozen=True, slots=True)
class Fetched:
    """A fetched resource; `not_modified` when a conditional GET found it unchanged."""

    url: str  # as asked for
    final_url: str  # after redirects
    status: int
    kind: str  # html, xml, pdf, text ("" when not modified)
    media_type: str
    body: bytes
    etag: str | None = None
    last_modified: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (tests replace this to simulate DNS answers)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"cannot resolve host {host!r}: {exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def address_problem(address: str) -> str | None:
    """Why connecting to `address` is refused, or None when it is a public address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address} is not an IP address"
    mapped = getattr(ip, "ipv4_mapped", None) or getattr(ip, "sixtofour", None)
    if mapped is not None:
        ip = mapped
    for test, label in (
        (ip.is_unspecified, "an unspecified"),
        (ip.is_loopback, "a loopback"),
        (ip.is_link_local, "a link-local"),
        (ip.is_multicast, "a multicast"),
        (ip.is_reserved, "a reserved"),
        (ip.is_private, "a private"),
        (not ip.is_global, "a non-public"),
    ):
        if test:
            return f"{ip} is {label} address"
    return None


def _host_addresses(host: str, port: int, policy: FetchPolicy) -> list[str]:
    """The addresses of `host` that may be connected to; refuses when any may not.

    A name resolving to a public and a private address is refused as a whole: which of
    them a connection would use is not ours to choose.
    """
    host = host.strip("[]")
    try:
        addresses = [str(ipaddress.ip_address(host.split("%", 1)[0]))]
    except ValueError:
        addresses = resolve(host, port)
    if not addresses:
        raise FetchError(f"cannot resolve host {host!r}")
    if not policy.allow_private:
        for address in addresses:
            problem = address_problem(address)
            if problem is not None:
                shown = host if host == address else f"{host} ({address})"
                raise FetchError(
                    f"refused {shown}: {problem.split(' is ', 1)[1]} "
                    "(set FETCH_ALLOW_PRIVATE to fetch from private networks)"
                )
    return addresses


class _CheckedBackend(httpcore.NetworkBackend):
    """httpcore's socket backend, connecting only to addresses it has checked itself."""

    def __init__(self, policy: FetchPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        addresses = _host_addresses(host, port, self._policy)
        last: Exception | None = None
        for address in addresses:
            try:
                return self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        raise FetchError("refused: not a network address")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _CheckedTransport(httpx.HTTPTransport):
    def __init__(self, policy: FetchPolicy) -> None:
        super().__init__(trust_env=False, retries=0)
        # Same pool httpx would build, with the checking backend underneath.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=10,
            max_keepalive_connections=5,
            keepalive_expiry=5.0,
            network_backend=_CheckedBackend(policy),
        )


def check_url(url: str) -> str:
    """`url` stripped, if it is an http(s) URL with a host and no credentials; else refuse."""
    url = url.strip()
    if not url:
        raise FetchError("empty URL")
    if len(url) > 2048:
        raise FetchError("URL too long (over 2,048 characters)")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        raise FetchError("not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise FetchError(f"only http and https URLs can be fetched, not {parts.scheme or url!r}")
    if not parts.hostname:
        raise FetchError("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise FetchError("URLs with a user name or password are not fetched")
    if any(ord(ch) < 33 or ord(ch) == 127 for ch in url):
        raise FetchError("the URL contains spaces or control characters")
    return url


class Fetcher:
    """Fetches URLs under one `FetchPolicy`, reusing connections; use as a context manager."""

    def __init__(self, policy: FetchPolicy) -> None:
        self.policy = policy
        t = policy.timeout
        self._client = httpx.Client(
            transport=_CheckedTransport(policy),
            timeout=httpx.Timeout(connect=t, read=t, write=t, pool=t),
            follow_redirects=False,
            trust_env=False,
            headers={
                "User-Agent": policy.user_agent,
                "Accept": ACCEPT,
                "Accept-Encoding": "gzip, deflate",
            },
        )

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def get(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> Fetched:
        """GET `url`, following up to `max_redirects` checked redirects.

        With `etag` or `last_modified` the request is conditional and an unchanged resource
        comes back as `not_modified` with no body.

        Raises:
            FetchError: refused or failed, with the reason.
        """
        asked = url = check_url(url)
        seen = {url}
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        deadline = time.monotonic() + self.policy.timeout * DEADLINE_FACTOR
        for _ in range(self.policy.max_redirects + 1):
            parts = urlsplit(url)
            # Before any connection, for a clear message; the connection checks again.
            _host_addresses(parts.hostname or "", parts.port or _default_port(parts), self.policy)
            try:
                with self._client.stream("GET", url, headers=headers) as response:
                    if response.status_code in REDIRECT_STATUSES:
                        url = _redirect_target(url, response)
                        if url in seen:
                            raise FetchError(f"redirect loop at {url}")
                        seen.add(url)
                        continue
                    return self._read(asked, url, response, deadline)
            except httpx.TimeoutException:
                raise FetchError(
                    f"timed out (no answer within {self.policy.timeout:g} s)"
                ) from None
            except httpx.InvalidURL:
                raise FetchError("not a valid URL") from None
            except httpx.HTTPError as exc:
                detail = " ".join(str(exc).split()) or type(exc).__name__
                raise FetchError(f"could not fetch: {detail[:200]}") from None
        raise FetchError(f"too many redirects (more than {self.policy.max_redirects})")

    def _read(self, asked: str, url: str, response: httpx.Response, deadline: float) -> Fetched:
        status = response.status_code
        etag = response.headers.get("etag")
        modified = response.headers.get("last-modified")
        if status == 304:
            return Fetched(asked, url, 304, "", "", b"", etag, modified)
        if status >= 400:
            phrase = response.reason_phrase or "error"
            raise FetchError(f"HTTP {status} {phrase}")
        if status != 200:
            raise FetchError(f"unexpected HTTP status {status}")
        media = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        kind = CONTENT_TYPES.get(media)
        if (
            kind is None
            and media in _GENERIC_BINARY
            and urlsplit(url).path.lower().endswith(".pdf")
        ):
            kind = "pdf"  # many servers label files generically; the PDF reader checks the magic
        if kind is None:
            raise FetchError(
                f"content type {media or 'unknown'!r} is not an article "
                "(HTML, XHTML, RSS/Atom/XML, PDF or plain text)"
            )
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.policy.max_bytes:
            raise FetchError(
                f"too large: {int(declared):,} bytes, over FETCH_MAX_BYTES "
                f"({self.policy.max_bytes:,})"
            )
        body = _read_capped(response, self.policy, deadline)
        return Fetched(asked, url, status, kind, media, body, etag, modified)


def _default_port(parts: Any) -> int:
    return 443 if parts.scheme.lower() == "https" else 80


def _redirect_target(url: str, response: httpx.Response) -> str:
    location = response.headers.get("location")
    if not location:
        raise FetchError(f"HTTP {response.status_code} redirect without a Location")
    return check_url(urljoin(url, location))


def _read_capped(response: httpx.Response, policy: FetchPolicy, deadline: float) -> bytes:
    """The body, inflated, streamed and cut: refused past `max_bytes` or the deadline."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        inflater: Any = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        inflater = zlib.decompressobj()
    elif encoding in ("", "identity"):
        inflater = None
    else:
        raise FetchError(f"unsupported content encoding {encoding!r}")
    limit = policy.max_bytes
    out = bytearray()
    received = 0
    try:
        for block in response.iter_raw(READ_BLOCK):
            if time.monotonic() > deadline:
                raise FetchError(
                    f"timed out (the transfer took over {policy.timeout * DEADLINE_FACTOR:g} s)"
                )
            received += len(block)
            if received > limit:
                raise FetchError(f"too large: over FETCH_MAX_BYTES ({limit:,} bytes)")
            if inflater is None:
                out += block
                continue
            out += inflater.decompress(block, limit + 1 - len(out))
            if len(out) > limit or inflater.unconsumed_tail:
                raise FetchError(
                    f"too large: decompresses to over FETCH_MAX_BYTES ({limit:,} bytes)"
                )
        if inflater is not None:
            out += inflater.flush(limit + 1 - len(out))
            if len(out) > limit:
                raise FetchError(
                    f"too large: decompresses to over FETCH_MAX_BYTES ({limit:,} bytes)"
                )
    except zlib.error:
        raise FetchError(f"broken {encoding} compression") from None
    return bytes(out)
