"""Live sources: `index add` and `index refresh` against a web server on 127.0.0.1.

Pages, feeds and sitemaps are written here; the server (tests/web_double.py) records every
request, so the tests can tell what a refresh fetched and what it did not.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import frontmatter
import pytest
from click.testing import CliRunner
from web_double import WebDouble, page

from index.articles import load_articles
from index.settings import IndexSettings
from index.sources.feeds import parse_feed, parse_sitemap
from index.sources.ingest import add_urls, refresh_sources
from index.sources.library import Library, article_path
from index.sources.sourcesfile import SourcesFileError, load_sources_file

HARBOUR = [
    "The old harbour lights of Millbrook were switched on again on Friday evening after ten "
    "years of darkness, watched by a crowd of several hundred residents.",
    "The restoration cost the harbour society 40,000 pounds, raised over five years of jumble "
    "sales, sponsored swims and a long-running raffle.",
    "Engineers replaced the wiring, the lenses and the iron frame, which had been damaged by "
    "salt and storms over the decades.",
]
LIBRARY = [
    "The Millbrook public library will open on Sundays from next month, the council announced "
    "on Tuesday after a petition signed by two thousand residents.",
    "Sunday opening hours will run from eleven in the morning until four in the afternoon, "
    "staffed by volunteers from the friends of the library group.",
]
FERRY = [
    "The island ferry will run every hour in summer instead of every two hours, the operator "
    "said, after complaints from tourists and commuters about long queues.",
    "Two new boats, each carrying sixty cars, join the route in June.",
]


def rss(items: list[tuple[str, str, str]]) -> str:
    entries = "".join(
        f"<item><title>{t}</title><link>{link}</link><pubDate>{d}</pubDate></item>"
        for t, link, d in items
    )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Courier</title>'
        f"<link>http://courier.example/</link><description>news</description>{entries}"
        "</channel></rss>"
    )


def atom(items: list[tuple[str, str, str]]) -> str:
    entries = "".join(
        f'<entry><title>{t}</title><link href="{link}"/><id>{link}</id><updated>{d}</updated>'
        "</entry>"
        for t, link, d in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>Docs</title><id>urn:docs</id><updated>2024-05-01T00:00:00Z</updated>{entries}"
        "</feed>"
    )


def sitemap(urls: list[str]) -> str:
    body = "".join(f"<url><loc>{u}</loc><lastmod>2024-05-01</lastmod></url>" for u in urls)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{body}</urlset>'
    )


@pytest.fixture
def web() -> Iterator[WebDouble]:
    with WebDouble() as w:
        w.add("/news/harbour-lights", page("Harbour lights return", HARBOUR,
                                           canonical="/news/harbour-lights", date="2024-03-02",
                                           author="Jane Roe"))  # fmt: skip
        w.add("/news/library-sundays", page("Library opens on Sundays", LIBRARY,
                                            date="2024-04-11"))  # fmt: skip
        w.add("/news/ferry", page("Hourly ferry in summer", FERRY, date="2024-05-20"))
        yield w


def settings_for(tmp_path: Path, **kwargs) -> IndexSettings:
    return IndexSettings(
        articles_dir=tmp_path / "articles",
        index_dir=tmp_path / "index",
        fetch_allow_private=True,  # the test server is on 127.0.0.1
        fetch_timeout_seconds=1.0,
        **kwargs,
    )


def test_add_writes_the_article_with_front_matter_and_drops_boilerplate(
    tmp_path: Path, web: WebDouble
) -> None:
    settings = settings_for(tmp_path)
    report = add_urls(settings, [web.url("/news/harbour-lights")])
    (outcome,) = report.outcomes
    assert outcome.status == "added", outcome
    assert outcome.path == article_path(web.url("/news/harbour-lights"))
    post = frontmatter.load(settings.articles_dir / outcome.path)
    assert post["title"] == "Harbour lights return"
    assert post["url"] == web.url("/news/harbour-lights")
    assert str(post["date"]) == "2024-03-02" and post["author"] == "Jane Roe"
    for sentence in HARBOUR:
        assert sentence in post.content
    for junk in ("Crispy Crunch", "Share this article", "Great article", "Cookie settings",
                 "Subscribe today"):  # fmt: skip
        assert junk not in post.content
    (article,) = load_articles(settings.articles_dir).articles
    assert article.url == web.url("/news/harbour-lights") and article.date == "2024-03-02"


def test_same_article_twice_adds_nothing(tmp_path: Path, web: WebDouble) -> None:
    web.add("/amp/harbour-lights", page("Harbour lights return", HARBOUR))  # same text
    web.add("/news/harbour-lights?utm_source=feed", page("Harbour lights return", HARBOUR,
            canonical="/news/harbour-lights"))  # fmt: skip
    settings = settings_for(tmp_path)
    first = add_urls(settings, [web.url("/news/harbour-lights")])
    again = add_urls(
        settings,
        [
            web.url("/news/harbour-lights"),
            web.url("/news/harbour-lights?utm_source=feed"),  # same canonical URL
            web.url("/amp/harbour-lights"),  # same text, another URL
        ],
    )
    assert [o.status for o in again.outcomes] == ["unchanged"] * 3
    assert {o.path for o in again.outcomes} == {first.outcomes[0].path}
    assert len(list((settings.articles_dir / "web").rglob("*.md"))) == 1


def test_failures_are_reported_and_the_rest_added(tmp_path: Path, web: WebDouble) -> None:
    web.add("/feed-not-article", rss([]), content_type="application/rss+xml")
    settings = settings_for(tmp_path)
    report = add_urls(
        settings,
        [web.url("/missing"), "ftp://example.org/x", web.url("/news/ferry"),
         web.url("/feed-not-article")],
    )  # fmt: skip
    got = report.to_json()
    assert [a["url"] for a in got["added"]] == [web.url("/news/ferry")]
    reasons = {f["url"]: f["reason"] for f in got["failed"]}
    assert reasons[web.url("/missing")] == "HTTP 404 Not Found"
    assert "only http and https" in reasons["ftp://example.org/x"]
    assert "not an article" in reasons[web.url("/feed-not-article")]


def test_private_address_refused_without_the_setting(tmp_path: Path, web: WebDouble) -> None:
    settings = IndexSettings(articles_dir=tmp_path / "articles", index_dir=tmp_path / "index")
    report = add_urls(settings, [web.url("/news/ferry")])
    assert "loopback" in (report.outcomes[0].reason or "")
    assert web.asked("/news/ferry") == 0


def test_feeds_and_sitemap_refresh_with_conditional_get(tmp_path: Path, web: WebDouble) -> None:
    web.add("/rss.xml", rss([
        ("Harbour lights return", web.url("/news/harbour-lights"), "Sat, 02 Mar 2024 10:00:00 GMT"),
        ("Library opens on Sundays", "/news/library-sundays", "Thu, 11 Apr 2024 09:00:00 GMT"),
    ]), content_type="application/rss+xml", etag='"rss-1"')  # fmt: skip
    web.add("/atom.xml", atom([("Ferry", web.url("/news/ferry"), "2024-05-20T08:00:00Z")]),
            content_type="application/atom+xml", etag='"atom-1"')  # fmt: skip
    web.add("/sitemap.xml", sitemap([web.url("/news/ferry"), web.url("/news/gone")]),
            content_type="application/xml")  # fmt: skip
    sources = tmp_path / "sources.toml"
    sources.write_text(
        f'[[feed]]\nurl = "{web.url("/rss.xml")}"\n\n[[feed]]\nurl = "{web.url("/atom.xml")}"\n'
        f'\n[[sitemap]]\nurl = "{web.url("/sitemap.xml")}"\ninclude = "/news/"\n',
        encoding="utf-8",
    )
    settings = settings_for(tmp_path, sources_file=sources)
    loaded = load_sources_file(sources)
    first = refresh_sources(settings, loaded)
    assert sorted(o.path or "" for o in first.with_status("added")) == sorted(
        article_path(web.url(p))
        for p in ("/news/harbour-lights", "/news/library-sundays", "/news/ferry")
    )
    assert [f.status for f in first.feeds] == ["fetched", "fetched", "fetched"]
    # the ferry is in the Atom feed and the sitemap: fetched once, added once
    assert [o.status for o in first.outcomes if o.url == web.url("/news/ferry")] == [
        "added", "unchanged"
    ]  # fmt: skip
    assert [(o.url, o.reason) for o in first.with_status("failed")] == [
        (web.url("/news/gone"), "HTTP 404 Not Found")
    ]
    meta = Library(settings.articles_dir).meta
    assert {m["feed"] for m in meta.values()} == {web.url("/rss.xml"), web.url("/atom.xml")}

    before = len(web.requests)
    second = refresh_sources(settings, loaded)
    assert [f.status for f in second.feeds[:2]] == ["not_modified", "not_modified"]  # ETags
    assert not second.changed
    new_requests = web.requests[before:]
    assert {r.path for r in new_requests if r.status != 304} <= {"/sitemap.xml", "/news/gone"}
    assert all(r.headers.get("If-None-Match") for r in new_requests if r.path.endswith("om.xml")
               or r.path == "/rss.xml")  # fmt: skip

    # a new entry: only it is fetched
    web.add("/rss.xml", rss([
        ("Hourly ferry", web.url("/news/ferry-2"), "Mon, 20 May 2024 10:00:00 GMT"),
        ("Harbour lights return", web.url("/news/harbour-lights"), "Sat, 02 Mar 2024 10:00:00 GMT"),
    ]), content_type="application/rss+xml", etag='"rss-2"')  # fmt: skip
    web.add("/news/ferry-2", page("More ferries", [FERRY[1] + " Tickets go on sale in May."]))
    harbour_fetches = web.fetched("/news/harbour-lights")
    third = refresh_sources(settings, loaded)
    assert [o.url for o in third.with_status("added")] == [web.url("/news/ferry-2")]
    assert web.fetched("/news/harbour-lights") == harbour_fetches


def test_a_failed_refresh_keeps_the_previous_version(tmp_path: Path, web: WebDouble) -> None:
    sources = tmp_path / "sources.toml"
    sources.write_text(f'[[page]]\nurl = "{web.url("/news/ferry")}"\n', encoding="utf-8")
    settings = settings_for(tmp_path, sources_file=sources)
    first = refresh_sources(settings, load_sources_file(sources))
    path = settings.articles_dir / (first.outcomes[0].path or "")
    content = path.read_text(encoding="utf-8")
    web.add("/news/ferry", "server error", status=500)
    second = refresh_sources(settings, load_sources_file(sources))
    assert second.outcomes[0].status == "failed" and "500" in (second.outcomes[0].reason or "")
    assert path.read_text(encoding="utf-8") == content


def test_prune_removes_only_old_feed_articles(tmp_path: Path, web: WebDouble) -> None:
    web.add("/rss.xml", rss([("Harbour", web.url("/news/harbour-lights"), "")]),
            content_type="application/rss+xml")  # fmt: skip
    sources = tmp_path / "sources.toml"
    sources.write_text(f'[[feed]]\nurl = "{web.url("/rss.xml")}"\n', encoding="utf-8")
    settings = settings_for(tmp_path)
    by_hand = add_urls(settings, [web.url("/news/library-sundays")]).outcomes[0].path
    report = refresh_sources(settings, load_sources_file(sources), prune_days=30)
    harbour = article_path(web.url("/news/harbour-lights"))
    assert report.pruned == [harbour]  # dated 2024-03-02, from a feed
    assert not (settings.articles_dir / harbour).exists()
    assert (settings.articles_dir / (by_hand or "")).exists()  # added by hand: kept
    assert Library(settings.articles_dir).prune(30, dt.datetime(2024, 3, 10, tzinfo=dt.UTC)) == []


def test_feed_and_sitemap_parsers() -> None:
    entries = parse_feed(
        rss([("A", "/a", "Sat, 02 Mar 2024 10:00:00 GMT"), ("B", "javascript:x", "")]).encode(),
        "http://courier.example/rss",
    )
    assert [e.url for e in entries] == ["http://courier.example/a"]
    assert entries[0].updated
    atom_entries = parse_feed(atom([("C", "http://d.example/c", "2024-01-01T00:00:00Z")])
                              .encode(), "http://d.example/")  # fmt: skip
    assert [e.url for e in atom_entries] == ["http://d.example/c"]
    pages, nested = parse_sitemap(sitemap(["http://d.example/x"]).encode(), "http://d.example/")
    assert [p.url for p in pages] == ["http://d.example/x"] and nested == []
    index = (
        '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><sitemap>'
        "<loc>http://d.example/s1.xml</loc></sitemap></sitemapindex>"
    )
    assert parse_sitemap(index.encode(), "http://d.example/")[1] == ["http://d.example/s1.xml"]
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>http://d.example/&b;'
        "</loc></url></urlset>"
    )
    pages, _ = parse_sitemap(bomb.encode(), "http://d.example/")  # entities never expanded
    assert all("aaaa" not in p.url for p in pages)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[[feed]]\nurl = "ftp://x.example/"\n', "feed 1: url: only http and https"),
        ('[feed]\nurl = "http://x.example/"\n', "write [[feed]]"),
        ('[[feeds]]\nurl = "http://x.example/"\n', "unknown table 'feeds'"),
        ('[[feed]]\nurl = "http://x.example/"\ncolour = 1\n', "colour"),
        ("[[feed]\n", "not valid TOML"),
    ],
)
def test_sources_file_mistakes_are_named(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "sources.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SourcesFileError) as caught:
        load_sources_file(path)
    assert words in str(caught.value)


def test_cli_refresh_without_sources_file_is_one_line(tmp_path: Path) -> None:
    from index.cli import cli

    result = CliRunner().invoke(cli, ["refresh"])
    assert result.exit_code == 2
    assert "SOURCES_FILE" in result.output


def test_cli_add_and_refresh_json_shapes(
    tmp_path: Path, web: WebDouble, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The `--json` contracts, in process (with the session's model)."""
    import index.cli as cli_module

    monkeypatch.setattr(cli_module, "load_configured_embedder", lambda *a, **k: embedder)
    monkeypatch.setenv("FETCH_ALLOW_PRIVATE", "true")
    web.add("/rss.xml", rss([("Ferry", web.url("/news/ferry"), "Mon, 20 May 2024 10:00:00 GMT")]),
            content_type="application/rss+xml", etag='"e1"')  # fmt: skip
    sources = tmp_path / "sources.toml"
    sources.write_text(f'[[feed]]\nurl = "{web.url("/rss.xml")}"\n', encoding="utf-8")

    runner = CliRunner()
    result = runner.invoke(
        cli_module.cli, ["add", web.url("/news/harbour-lights"), web.url("/missing"), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) >= {"added", "unchanged", "failed", "rebuild"}
    assert data["added"] == [{"url": web.url("/news/harbour-lights"),
                              "title": "Harbour lights return",
                              "path": article_path(web.url("/news/harbour-lights"))}]  # fmt: skip
    assert data["failed"] == [{"url": web.url("/missing"), "reason": "HTTP 404 Not Found"}]
    assert data["rebuild"]["added"] == 1 and data["rebuild"]["published"] is True

    result = runner.invoke(cli_module.cli, ["add", web.url("/missing"), "--json"])
    assert result.exit_code == 1 and json.loads(result.stdout)["rebuild"] is None

    result = runner.invoke(cli_module.cli, ["refresh", "--sources-file", str(sources), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["feeds"] == [{"url": web.url("/rss.xml"), "kind": "feed", "status": "fetched",
                              "entries": 1}]  # fmt: skip
    assert [a["url"] for a in data["added"]] == [web.url("/news/ferry")]
    assert data["rebuild"]["added"] == 1 and data["pruned"] == []

    result = runner.invoke(cli_module.cli, ["refresh", "--sources-file", str(sources), "--json"])
    data = json.loads(result.stdout)
    assert data["feeds"][0]["status"] == "not_modified" and data["rebuild"] is None


# ------------------------------------------------------------------------------ the canary


def seed_page(seed: Path) -> str:
    """The seed article inside a page of the usual boilerplate (nav, ads, comments)."""
    lines = [line.strip() for line in seed.read_text(encoding="utf-8").splitlines()]
    lines = [line for line in lines if line]
    return page(html.escape(lines[0]), [html.escape(line) for line in lines[1:]],
                date="2016-11-04", author="Staff")  # fmt: skip


def test_canary_add_seed_page_then_ask_cites_the_passage(
    tmp_path: Path, seeds_dir: Path, web: WebDouble, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`index add URL --json`, then `bot ask --json`, run in process with the session's model
    (the commands' code is the same as in a subprocess; only the model load is saved)."""
    import bot.cli
    import bot.service
    import index.cli

    monkeypatch.setattr(index.cli, "load_configured_embedder", lambda *a, **k: embedder)
    monkeypatch.setattr(bot.service, "load_configured_embedder", lambda *a, **k: embedder)
    monkeypatch.setenv("FETCH_ALLOW_PRIVATE", "true")
    seed = seeds_dir / "000_39a60bc8d7f6d11b.txt"
    url = web.add("/world/obama-putin-election-hack", seed_page(seed))
    runner = CliRunner()
    added = runner.invoke(index.cli.cli, ["add", url, "--json", "--quiet"])
    assert added.exit_code == 0, added.output
    assert [a["url"] for a in json.loads(added.stdout)["added"]] == [url]

    asked = runner.invoke(bot.cli.cli, ["ask", "--json", "what did Obama say to Putin?"])
    assert asked.exit_code == 0, asked.output
    answer = json.loads(asked.stdout)
    assert answer["found"] is True
    assert any("cut it out" in c["quote"] for c in answer["citations"])
    for citation in answer["citations"]:
        assert citation["date"] == "2016-11-04"
        link = citation["url"]
        assert link.startswith(url + "#:~:text=")
        terms = [unquote(t) for t in urlsplit(link).fragment.split(":~:text=", 1)[1].split(",")]
        words = citation["quote"].split()
        assert terms[0] == " ".join(words[: len(terms[0].split())])
        assert terms[-1] == " ".join(words[-len(terms[-1].split()) :])
        # the browser finds both ends on the page as served
        page_text = " ".join(html.unescape(web.routes[urlsplit(url).path].body.decode()).split())
        assert all(term in page_text for term in terms)


# ------------------------------------------------------------------------------ passage links


def test_text_fragments_are_encoded_per_the_spec() -> None:
    from bot.citations import passage_link, text_directive

    assert text_directive("Short quote, with a comma") == "text=Short%20quote%2C%20with%20a%20comma"
    long = "The well-known bridge, rebuilt in 2021 & painted red, reopened on Saturday after "
    long += "eight months of repairs by the council."
    directive = text_directive(long)
    assert directive == (
        "text=The%20well%2Dknown%20bridge%2C%20rebuilt%20in,of%20repairs%20by%20the%20council."
    )
    start, end = (unquote(t) for t in directive.removeprefix("text=").split(","))
    assert long.startswith(start) and long.endswith(end)
    assert passage_link("https://e.org/a#top", "Hello world") == (
        "https://e.org/a#top:~:text=Hello%20world"
    )
    assert passage_link("https://e.org/r.pdf", "Hello", page=4) == "https://e.org/r.pdf#page=4"
    assert passage_link(None, "Hello") is None
    assert passage_link("javascript:alert(1)", "Hello") is None


def test_sources_show_dates_and_pages() -> None:
    from bot.formatting import answer_embed, answer_text, source_details
    from bot.models import Answer, Citation

    assert source_details("2016-12-16T10:00:00+00:00", [4]) == "2016-12-16, p. 4"
    assert source_details(None, [2, 5]) == "pp. 2, 5"
    assert source_details(None) == ""
    quote = "The lights were switched on again."
    cited = Citation(
        n=1, article_id="a", title="Harbour lights", source="https://e.org/a", chunk_id="a#0",
        start=0, end=len(quote), quote=quote, score=1.0, url="https://e.org/a",
        date="2024-03-02", link="https://e.org/a#:~:text=The%20lights",
    )  # fmt: skip
    answer = Answer("When?", "Friday [1].", True, [cited])
    assert "[1] Harbour lights (2024-03-02) — https://e.org/a#:~:text=The%20lights" in (
        answer_text(answer)
    )
    field = answer_embed(answer).fields[0]
    assert field.name == "[1] Harbour lights · 2024-03-02"
    assert "[Harbour lights](https://e.org/a#:~:text=The%20lights)" in field.value
    assert cited.to_json()["url"] == "https://e.org/a#:~:text=The%20lights"
