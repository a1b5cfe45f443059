"""PDF articles: text per page, and citations that name the page ("p. 3").

The PDFs are made here with fpdf2 from text written for the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from web_double import WebDouble

from bot.formatting import answer_embed, answer_text
from bot.service import QAService
from bot.settings import Settings
from index.articles import load_articles
from index.rebuild import rebuild
from index.sources.ingest import add_urls
from index.sources.pdf import PdfError, page_of, read_pdf

PAGES = [
    "Annual report of the Millbrook water board. This report covers the year's work on the "
    "reservoirs, the pumping stations and the pipes that serve the town.",
    "The board replaced eleven kilometres of old cast iron pipes in the northern district. "
    "Leaks fell by a third compared with the year before.",
    "The Hollow Lane pumping station was rebuilt at a cost of 3.2 million euros and reopened "
    "in October. Its new pumps use forty percent less electricity than the old ones.",
]

LIBRARY_PAGES = [
    "Report of the Millbrook library trust for the year. The trust runs the town library, "
    "its mobile van and the reading room at the harbour.",
    "Visits to the library rose to 48,000 this year. The mobile van stopped in nine villages "
    "every fortnight and lent 6,300 books.",
]


def make_pdf(pages: list[str], title: str | None = "Millbrook water board annual report") -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    if title:
        pdf.set_title(title)
    pdf.set_creation_date(__import__("datetime").datetime(2024, 2, 29, 12, 0, 0))
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def test_read_pdf_keeps_each_page_start() -> None:
    pdf = read_pdf(make_pdf(PAGES))
    assert len(pdf.pages) == 3 and pdf.pages[0] == 0
    assert pdf.title == "Millbrook water board annual report"
    assert pdf.date == "2024-02-29"
    for number, start in enumerate(pdf.pages, 1):
        first_words = " ".join(PAGES[number - 1].split()[:4])
        assert pdf.text[start:].startswith(first_words)
        assert page_of(pdf.pages, start) == number
    assert page_of(pdf.pages, pdf.text.index("Hollow Lane")) == 3


def test_blank_pages_keep_their_numbers() -> None:
    pdf = read_pdf(make_pdf([PAGES[0], "", PAGES[2]]))
    assert page_of(pdf.pages, pdf.text.index("Hollow Lane")) == 3


@pytest.mark.parametrize(
    ("raw", "words"), [(b"not a pdf at all", "not a PDF"), (b"%PDF-1.4\n garbage", "PDF")]
)
def test_broken_pdfs_say_why(raw: bytes, words: str) -> None:
    with pytest.raises(PdfError) as caught:
        read_pdf(raw)
    assert words in caught.value.reason


def test_pdf_in_the_folder_loads_with_pages_and_a_broken_one_is_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "report.pdf").write_bytes(make_pdf(PAGES))
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\n\x00\x01 nothing here")
    loaded = load_articles(folder)
    (article,) = loaded.articles
    assert article.title == "Millbrook water board annual report"
    assert article.pages is not None and len(article.pages) == 3
    assert [s.path for s in loaded.skipped] == ["broken.pdf"]


@pytest.fixture(scope="module")
def web() -> Iterator[WebDouble]:
    with WebDouble() as w:
        w.add("/reports/library-2023.pdf", make_pdf(LIBRARY_PAGES, title="Library trust report"),
              content_type="application/pdf")  # fmt: skip
        yield w


def test_pdf_citations_name_the_page(tmp_path: Path, embedder, web: WebDouble) -> None:
    """A PDF in the folder and one fetched by URL: answers from each cite their page."""
    settings = Settings(
        articles_dir=tmp_path / "articles", index_dir=tmp_path / "index", fetch_allow_private=True
    )
    settings.articles_dir.mkdir()
    (settings.articles_dir / "report.pdf").write_bytes(make_pdf(PAGES, title="Water report"))
    url = web.url("/reports/library-2023.pdf")
    added = add_urls(settings, [url])
    assert [o.status for o in added.outcomes] == ["added"], added.to_json()
    rebuild(settings, lambda: embedder)
    service = QAService(settings, embedder=embedder)

    answer = service.answer("What did rebuilding the Hollow Lane pumping station cost?")
    local = next(c for c in answer.citations if "3.2 million" in c.quote)
    assert local.article_id == "report.pdf" and local.page == 3
    assert local.link is None  # no address to link to, but the page is named
    assert "p. 3)" in answer_text(answer)
    assert "p. 3" in " ".join(f.name for f in answer_embed(answer).fields)

    answer = service.answer("How many books did the mobile library van lend?")
    fetched = next(c for c in answer.citations if "6,300" in c.quote)
    assert fetched.article_id == added.outcomes[0].path and fetched.page == 2
    assert fetched.link == f"{url}#page=2"
    assert fetched.to_json()["url"] == f"{url}#page=2"
    assert fetched.to_json()["page"] == 2
