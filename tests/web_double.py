"""A small web server on 127.0.0.1 for the live-sources tests and benchmark.

Each path serves a `Route`: a status, headers and body, optionally slow, endless, with an
ETag honoured on conditional requests. Every request is recorded (`requests`), so a test
can tell what was fetched and what was not. It never listens anywhere but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import threading
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    delay: float = 0.0  # seconds before the response starts
    endless: bool = False  # the body never ends


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    status: int


class WebDouble:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # quiet
                return

            def do_GET(self) -> None:
                route = double.routes.get(self.path)
                status = 404 if route is None else route.status
                if (
                    route is not None
                    and route.etag
                    and (self.headers.get("If-None-Match") == route.etag)
                ):
                    status = 304
                with double._lock:
                    double.requests.append(Request(self.path, dict(self.headers), status))
                if route is None:
                    body = b"<html><body><h1>Not found</h1></body></html>"
                    self.send_response(404)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if route.delay:
                    double._stop.wait(route.delay)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._respond(route, status)

            def _respond(self, route: Route, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Type", route.content_type)
                if route.etag:
                    self.send_header("ETag", route.etag)
                for name, value in route.headers.items():
                    self.send_header(name, value)
                if status == 304:
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if route.endless:
                    self.send_header("Connection", "close")
                    self.end_headers()
                    block = b"<p>" + b"more " * 2000 + b"</p>\n"
                    while not double._stop.is_set():
                        self.wfile.write(block)
                    return
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                self.wfile.write(route.body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def add(self, path: str, body: bytes | str = b"", **kwargs: object) -> str:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.routes[path] = Route(body=data, **kwargs)  # type: ignore[arg-type]
        return self.url(path)

    def redirect(self, path: str, to: str, status: int = 302) -> str:
        return self.add(path, b"", status=status, headers={"Location": to})

    def fetched(self, path: str) -> int:
        """Requests of `path` answered with a body (not 304)."""
        with self._lock:
            return sum(1 for r in self.requests if r.path == path and r.status != 304)

    def asked(self, path: str) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.path == path)

    def __enter__(self) -> WebDouble:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()


def gzip_bomb(inflated_bytes: int) -> bytes:
    """A gzip body of a few kilobytes that inflates to `inflated_bytes` of zeros."""
    block = b"\0" * (1 << 20)
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [z.compress(block) for _ in range(inflated_bytes // len(block))]
    parts.append(z.flush())
    return b"".join(parts)


def page(
    title: str,
    body_paragraphs: list[str],
    *,
    canonical: str | None = None,
    date: str | None = None,
    author: str | None = None,
) -> str:
    """An article page with the boilerplate of a real site: nav, ads, share bar, comments."""
    head = [f"<title>{title} | The Valley Courier</title>"]
    if canonical:
        head.append(f'<link rel="canonical" href="{canonical}">')
    if date:
        head.append(f'<meta property="article:published_time" content="{date}">')
    if author:
        head.append(f'<meta name="author" content="{author}">')
    paragraphs = "\n".join(f"<p>{p}</p>" for p in body_paragraphs)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">{"".join(head)}</head>
<body>
<header><nav><ul><li><a href="/">Home</a></li><li><a href="/news">News</a></li>
<li><a href="/sport">Sport</a></li><li><a href="/weather">Weather</a></li>
<li><a href="/subscribe">Subscribe today and save 50 percent on your first year</a></li>
</ul></nav></header>
<div class="ad-banner"><p>ADVERTISEMENT: Try the new Crispy Crunch cereal bars, now in
three flavours at every supermarket near you.</p></div>
<main><article>
<h1>{title}</h1>
<p class="byline">By {author or "Staff reporter"}</p>
{paragraphs}
</article></main>
<aside class="share"><p>Share this article on Facebook, Twitter and by email.</p></aside>
<section id="comments" class="comments"><h3>Comments (3)</h3>
<div class="comment"><p>Great article, I always said the council would do this.</p></div>
<div class="comment"><p>Does anyone know whether the car park is still open on Sundays?</p></div>
</section>
<footer><p>Copyright 2024 The Valley Courier Media Group. All rights reserved.</p>
<p>Privacy policy | Cookie settings | Terms of use | Contact us</p></footer>
</body></html>"""
