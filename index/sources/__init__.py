"""Live sources: web pages, feeds, sitemaps and PDFs that become files in the articles folder.

The articles folder stays the one source of truth: a fetched page is written there as a
Markdown article with front matter (`library.py`), and the ordinary incremental rebuild
indexes it. Every network request goes through `fetch.py`, the one place that enforces the
rules for fetching URLs a stranger may have typed (SSRF checks on every hop, size, time and
content-type caps).
"""
