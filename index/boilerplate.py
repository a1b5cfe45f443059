"""Find the text of a page that is not the article: pitches, bars, bylines, link lists.

Scraped news carries donation and newsletter pitches, cookie and share bars, "Read more"
lines, byline-only lines and lists of related links. trafilatura drops most of it from HTML,
but what sits inside the article body survives, and text dumps keep all of it, sometimes
glued to the story's first sentence. It must not be quoted as an answer nor embedded, yet
the stored text keeps it (citations are offsets into that text), so boilerplate is a set of
spans to leave out, never a deletion.

Two signals, both at the level of the blocks and sentences of `index.sentences`:

* the page itself: a lexicon of pitch and chrome phrases read outside quotation marks
  (a quoted "please donate" is news; an unquoted one is a pitch), the reader-addressing
  voice of a pitch ("we", "our", "you", an imperative opening), and the shape of byline,
  share-bar and link-list lines. Weak cues count only next to a block with strong ones,
  since pitches come in runs and an op-ed's "we" alone proves nothing;
* the corpus: a block repeated verbatim across articles of one site (URL host, else
  folder) with different titles is the site's furniture, whatever it says. Syndicated
  copies of one story share its title, which is why the titles must differ.

`mark_boilerplate` runs both over a whole folder (the repetition signal needs all of it),
after loading and before chunking; its spans become part of the article's content hash, so
an article whose boilerplate changes is re-embedded.
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .models import Article
from .sentences import Sentence, sentences

if TYPE_CHECKING:
    from .article_cache import ArticleCache

CLEANING_VERSION = 1
"""Bumped whenever block, sentence or boilerplate detection changes what is embedded, so
that published chunks built by an older rule are re-embedded (see `rebuild.content_hash`)."""

Span = tuple[int, int]

MIN_REPEATS = 3  # distinct-title articles of one site sharing a block before it is furniture
_REPEAT_MIN_CHARS = 12  # shorter blocks ("Photo", "Reuters") repeat by chance
_STRONG, _WEAK = 1.0, 0.5

# Phrases that, outside quotation marks, only a page's own furniture says.
_PITCH = re.compile(
    r"""
    \byour\ (?:support|donation|contribution|generosity|gift|subscription)\b
    | \b(?:donate|contribute)\ (?:now|today|here|monthly|once)\b
    | \b(?:make|give)\ a\ (?:donation|contribution|one-off\ gift|gift)\b
    | \bsupport\ (?:us|our\ (?:journalism|reporting|work|newsroom|mission)
        |independent\ journalism|quality\ journalism|local\ journalism)\b
    | \bbecome\ a\ (?:member|subscriber|supporter|patron|friend\ of)\b
    | \b(?:consider|please)\ (?:supporting|sponsoring|donating|subscribing|sharing|becoming)\b
    | \bsponsor(?:ing)?\ us\b
    | \balready\ a\ (?:subscriber|member|supporter)\b
    | \bsubscribe\ (?:now|today|here|for|to\ (?:our|the)|and)\b
    | \b(?:sign|signing)\ up\ (?:for|to|now|here|today)\b
    | \b(?:our|free|daily|weekly|morning|evening)\ (?:\w+\ )?newsletters?\b
    | \b(?:in|to)\ your\ inbox\b
    | \benter\ your\ email\b
    | \bwe\ use\ cookies\b | \bthis\ (?:site|website)\ uses\ cookies\b
    | \bcookie\ (?:policy|settings|preferences|notice|consent)\b
    | \baccept\ (?:all\ )?cookies\b
    | \bby\ (?:continuing|using\ this\ (?:site|website))\b
    | \bprivacy\ (?:policy|notice)\b
    | \bjoin\ (?:our|the)\ (?:commenting\ forum|conversation|discussion|community)\b
    | \bcomments?\ (?:are|have\ been)\ (?:closed|disabled)\b
    | \bcommunity\ guidelines\b
    | \bfollow\ us\ on\b | \blike\ us\ on\ facebook\b
    | \bdownload\ (?:our|the)\ (?:free\ )?app\b | \bget\ the\ app\b
    | \bcontributed\ to\ this\ (?:report|story|article)\b
    | \ball\ rights\ reserved\b | ©
    | \bstory\ continues\ below\b | \bcontinue\ reading\b
    | \bclick\ here\b | \bunlimited\ access\b
    | \bstart\ your\ (?:free\ )?trial\b | \breader[- ]funded\b
    | \bshare\ (?:this|on|via)\ (?:article|story|page|facebook|twitter|x|email|whatsapp)\b
    """,
    re.IGNORECASE | re.VERBOSE,
)
# Substrings of which every match of `_PITCH` holds one: a cheap test first, since the
# alternation is slow to run over every sentence of a large folder.
_PITCH_TRIGGERS = (
    "your ", "donat", "contribut", "gift", "support us", "support our", "support indep",
    "support quality", "support local", "supporting", "become a", "becoming", "already a",
    "subscri", "sign up", "signing up", "newsletter", "inbox", "cookie", "by continuing",
    "by using", "privacy", "join our", "join the", "comments are", "comments have",
    "community guidelines", "follow us", "like us", "the app", "our app", "free app",
    "rights reserved", "©", "continue", "click here", "unlimited", "trial", "funded",
    "share this", "share on", "share via", "sharing", "sponsor",
)  # fmt: skip
_QUOTE_MARK = re.compile('[“”"]')
# A whole short block that is a piece of page chrome.
_CHROME_LINE = re.compile(
    r"""^(?:
        (?:read|see)\ (?:more|next|also)(?:\s*[:|–—-].*)?
      | related(?:\ \w+)?(?:\s*[:|–—-].*)? | more\ (?:on|from|about)\ [^.]{1,40}
      | (?:most\ (?:read|popular|viewed|shared)|recommended(?:\ for\ you)?|trending(?:\ now)?
        |you\ (?:may|might)\ also\ like|top\ stories|latest\ (?:news|stories)|editor'?s\ picks)
        (?:\s*[:|–—-].*)?
      | advertisement | sponsored(?:\ content)? | comments? | \d+\ comments?
      | (?:support|donate\ to|subscribe\ to|join|help|back|fund)\ (?:the|us|our)\b(?:\ \S+){0,3}
      | (?:show|view|hide|load)\ comments | sign\ up | subscribe | donate | log\ ?in
    ):?$""",
    re.IGNORECASE | re.VERBOSE,
)
# A whole short block that credits or dates the page: furniture, but no sign of a pitch
# around it (a blog's first paragraph after its byline is the author's). Names must be
# capitalised: "By noon it was over" is a sentence.
_BYLINE = re.compile(
    r"""^(?:
        (?:published|updated|posted|last\ updated|first\ published)(?:\ on|\ at)?:?
        \ (?:\w+,?\ )?\d.*
      | (?:by|written\ by|words\ by|story\ by|text\ by)
        \ (?-i:[A-Z][\w'.-]+(?:\ (?:[A-Z][\w'.-]+|de|van|von|da|al))*)
        (?:\s*(?:,|and|&|\||–|-|·|•)\s*[\w'. -]+)?
      | (?:(?:additional\ )?reporting|editing|writing)\ by\ (?-i:[A-Z]).*
      | (?:photo(?:graph)?s?|images?|pictures?|video|illustrations?)(?:\ credit)?\s*[:|].*
      | \d+\ (?:minutes?|hours?|days?)\ ago
    )\.?$""",
    re.IGNORECASE | re.VERBOSE,
)
_LIST_LEAD = re.compile(
    r"^(?:related\b|more\ (?:on|from|about)\b|most\ (?:read|popular|viewed|shared)\b"
    r"|recommended\b|you\ (?:may|might)\ also\ like\b|top\ stories\b|latest\ (?:news|stories)\b"
    r"|trending\b|(?:read|see)\ (?:more|also|next)\b|editor'?s\ picks\b)",
    re.IGNORECASE | re.VERBOSE,
)
_SHARE_WORDS = frozenset(
    ["share", "shares", "tweet", "facebook", "twitter", "x", "email", "e-mail", "whatsapp",
     "linkedin", "pinterest", "reddit", "print", "copy", "link", "messenger", "telegram",
     "bluesky", "threads", "save", "this", "article", "story", "on", "via"]
)  # fmt: skip
_SHARE_TARGETS = frozenset(
    ["share", "tweet", "facebook", "twitter", "email", "e-mail", "whatsapp", "linkedin",
     "pinterest", "reddit", "messenger", "telegram", "bluesky"]
)  # fmt: skip
_WORD = re.compile(r"[\w'’-]+")
# case-sensitive "us": "US" is the country
_FIRST_PLURAL = re.compile(r"\b(?:[Ww]e|[Ww]e['’](?:re|ve)|[Oo]urs?|us)\b")
_SECOND = re.compile(r"\b(?:you|your|you're|yours)\b", re.IGNORECASE)
_IMPERATIVE = re.compile(
    r"^(?:join|follow|sign|subscribe|donate|support|download|click|tap|share|register|"
    r"become|enter|discover|explore|get|try|tell|help)\b",
    re.IGNORECASE,
)
_PITCH_WEAK = re.compile(
    r"\b(?:journalism|paywalls?|newsletters?|readers|subscribers?|donations?|membership)\b",
    re.IGNORECASE,
)
_HEADLINE_MAX_WORDS = 16
_MAX_WEAK_RUN = 4  # longest run of weak-cue blocks taken between two pitches
_ENDS_PUNCT = re.compile(r"[.!:;…]['\"”’)]*$")


@dataclass(slots=True)
class _Block:
    """A block of the article with its sentences and what the detector found in it."""

    start: int
    end: int
    kind: str
    sentences: list[Sentence]
    scores: list[float]
    strong: bool = False  # boilerplate on its own evidence (or repeated across the site)
    boilerplate: bool = False
    byline: bool = False  # a credit or date line: furniture, but not a pitch

    @property
    def core_mean(self) -> float:
        """`mean` without the pitch sentences glued at either end (`_edge_sentences` takes
        those), so that a story paragraph with a pitch glued to it is not taken for one."""
        lo, hi = 0, len(self.scores)
        while lo < hi - 1 and self.scores[lo] >= _STRONG:
            lo += 1
        while hi - 1 > lo and self.scores[hi - 1] >= _STRONG:
            hi -= 1
        return _Block(
            self.start, self.end, self.kind, self.sentences[lo:hi], self.scores[lo:hi]
        ).mean

    @property
    def mean(self) -> float:
        """Pitch score of the block, weighted by sentence length."""
        pairs = list(zip(self.sentences, self.scores, strict=True))
        total = sum(s.end - s.start for s, _ in pairs) or 1
        return sum((s.end - s.start) * w for s, w in pairs) / total


def detect(text: str, repeated: frozenset[str] = frozenset()) -> list[Span]:
    """Boilerplate spans of one article's text, sorted and disjoint.

    Args:
        text: the article's stored text.
        repeated: keys (`block_key`) of blocks and sentences this article's site repeats
            across articles (`repeated_blocks`).
    """
    return _detect(text, _blocks(text), repeated)


def _detect(text: str, blocks: list[_Block], repeated: frozenset[str]) -> list[Span]:
    for b in blocks:
        body = text[b.start : b.end]
        b.strong = (
            block_key(body) in repeated
            or _is_chrome(body)
            or (any(w >= _STRONG for w in b.scores) and b.mean >= 0.5)
        )
        b.byline = bool(_BYLINE.match(body.strip()))
        b.boilerplate = b.strong
    _spread_to_link_lists(text, blocks)
    _spread_through_pitch_runs(blocks)
    for b in blocks:
        if len(b.sentences) > 1 and not b.boilerplate:
            # a sentence the site repeats, glued to its story, goes at the block's edge
            b.scores = [
                _STRONG if block_key(text[s.start : s.end]) in repeated else w
                for s, w in zip(b.sentences, b.scores, strict=True)
            ]
    spans: list[Span] = []
    for i, b in enumerate(blocks):
        if b.boilerplate:
            spans.append((b.start, b.end))
            continue
        spans.extend(_edge_sentences(blocks, i))
    return _merge(spans)


def _blocks(text: str) -> list[_Block]:
    units = sentences(text)
    by_block: dict[int, list[Sentence]] = defaultdict(list)
    for u in units:
        by_block[u.block].append(u)
    out: list[_Block] = []
    for index in sorted(by_block):
        group = by_block[index]
        quoted = _quoted_mask(text, group[0].start, group[-1].end)
        scores = [_sentence_score(text, s, quoted, group[0].start) for s in group]
        out.append(_Block(group[0].start, group[-1].end, group[0].kind, group, scores))
    return out


def _quoted_mask(text: str, start: int, end: int) -> bytearray:
    """1 for each character of `text[start:end]` inside quotation marks (marks included)."""
    mask = bytearray(end - start)
    opened: int | None = None
    for m in _QUOTE_MARK.finditer(text, start, end):
        i, c = m.start() - start, m.group()
        if c == "“" or (c == '"' and opened is None):
            opened = i
        elif opened is not None:  # ” or the closing "
            mask[opened : i + 1] = b"\x01" * (i + 1 - opened)
            opened = None
    if opened is not None:  # a quote running on into the next paragraph, as in news style
        mask[opened:] = b"\x01" * (len(mask) - opened)
    return mask


def _sentence_score(text: str, s: Sentence, quoted: bytearray, base: int) -> float:
    if s.kind not in ("paragraph", "item", "quote", "heading"):
        return 0.0
    body = text[s.start : s.end]

    def outside(m: re.Match[str]) -> bool:
        return not quoted[s.start - base + m.start()]

    low = body.lower()
    if any(t in low for t in _PITCH_TRIGGERS) and any(outside(m) for m in _PITCH.finditer(body)):
        return _STRONG
    first = any(outside(m) for m in _FIRST_PLURAL.finditer(body))
    second = any(outside(m) for m in _SECOND.finditer(body))
    imperative = bool(_IMPERATIVE.match(body)) and not quoted[s.start - base]
    pitchy = any(outside(m) for m in _PITCH_WEAK.finditer(body))
    if (first or second or pitchy) and imperative:
        return _STRONG
    if imperative or first or (second and pitchy):
        return _WEAK  # the reporter's voice rarely says "we" outside quotes; a pitch does
    return 0.0


def _spread_through_pitch_runs(blocks: list[_Block]) -> None:
    """Blocks with weak cues only go when pitch surrounds their run on both sides.

    Pitches come in runs ("Support us" / why it matters / "Donate today"), while a blog's
    "we" next to a single subscribe box is the author's own voice.
    """
    i = 0
    while i < len(blocks):
        j = i
        while j < len(blocks) and _weak_block(blocks[j]):
            j += 1
        if j - i:
            before = i > 0 and _pitch_side(blocks[i - 1], -1)
            after = j < len(blocks) and _pitch_side(blocks[j], 0)
            if before and after and j - i <= _MAX_WEAK_RUN:
                for b in blocks[i:j]:
                    b.boilerplate = True
        i = j + 1


def _pitch_side(b: _Block, edge: int) -> bool:
    """Whether `b` is a pitch, or has a pitch sentence at the `edge` facing the run."""
    return (b.strong and not b.byline) or b.scores[edge] >= _STRONG


def _weak_block(b: _Block) -> bool:
    return not b.strong and b.kind in ("paragraph", "item", "quote") and b.core_mean >= 0.2


def _is_chrome(body: str) -> bool:
    """A short block that is plainly page furniture: a byline, a "Read more", a share bar."""
    words = _WORD.findall(body)
    if not words or len(words) > 24:
        return False
    line = body.strip()
    if _CHROME_LINE.match(line) or _BYLINE.match(line):
        return True
    lower = [w.lower() for w in words]
    share = sum(1 for w in lower if w in _SHARE_WORDS)
    named = any(w in _SHARE_TARGETS for w in lower)  # "Copy on write" is no share bar
    return len(words) >= 2 and named and share / len(words) >= 0.6


def _headline_like(text: str, b: _Block) -> bool:
    body = text[b.start : b.end]
    return len(_WORD.findall(body)) <= _HEADLINE_MAX_WORDS and not _ENDS_PUNCT.search(body)


def _spread_to_link_lists(text: str, blocks: list[_Block]) -> None:
    """A "Related"/"Most read" lead takes the run of headline-like lines that follow it."""
    for i, b in enumerate(blocks):
        if not (b.strong and _LIST_LEAD.match(text[b.start : b.end])):
            continue
        for nxt in blocks[i + 1 :]:
            if nxt.kind not in ("item", "paragraph") or not _headline_like(text, nxt):
                break
            nxt.boilerplate = nxt.strong = True


def _edge_sentences(blocks: list[_Block], i: int) -> list[Span]:
    """Pitch sentences glued to the start or end of a story block next to boilerplate."""
    b = blocks[i]
    spans: list[Span] = []
    before = i == 0 or blocks[i - 1].boilerplate
    after = i == len(blocks) - 1 or blocks[i + 1].boilerplate
    n = len(b.sentences)
    lead = 0
    while before and lead < n - 1 and b.scores[lead] >= _STRONG:
        spans.append((b.sentences[lead].start, b.sentences[lead].end))
        lead += 1
    tail = n - 1
    while after and tail > lead and b.scores[tail] >= _STRONG:
        spans.append((b.sentences[tail].start, b.sentences[tail].end))
        tail -= 1
    return spans


def _merge(spans: list[Span]) -> list[Span]:
    out: list[Span] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def block_key(body: str) -> str:
    """What two copies of one block share: case and whitespace do not matter."""
    return " ".join(body.lower().split())


def site_of(article: Article) -> str:
    """The group an article's furniture is shared with: its URL's host, else its folder."""
    if article.url:
        host = urlsplit(article.url).hostname
        if host:
            return host.removeprefix("www.")
    folder, _, _ = article.path.rpartition("/")
    return f"folder:{folder}"


def repeated_blocks(articles: Sequence[Article]) -> dict[str, frozenset[str]]:
    """Per site, the keys of blocks (and sentences) found in `MIN_REPEATS` or more
    differently titled articles."""
    return _repeated([(a, _blocks(a.text)) for a in articles])


def _repeated(parsed: Sequence[tuple[Article, list[_Block]]]) -> dict[str, frozenset[str]]:
    titles: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for article, blocks in parsed:
        seen = titles[site_of(article)]
        for key in _keys(article.text, blocks):
            seen[key].add(article.title.casefold())
    return {
        site: frozenset(k for k, t in seen.items() if len(t) >= MIN_REPEATS)
        for site, seen in titles.items()
    }


def _keys(text: str, blocks: list[_Block]) -> set[str]:
    """Keys of the article's blocks, and of the sentences of its multi-sentence blocks (a
    site's pitch sentence glued to the story's first one repeats, the block does not)."""
    keys: set[str] = set()
    for b in blocks:
        keys.add(block_key(text[b.start : b.end]))
        if len(b.sentences) > 1:
            keys.update(block_key(text[s.start : s.end]) for s in b.sentences)
    return {k for k in keys if len(k) >= _REPEAT_MIN_CHARS}


def mark_boilerplate(
    articles: Sequence[Article], cache: ArticleCache | None = None
) -> list[Article]:
    """The articles with `Article.boilerplate` set, from their own text and their site's.

    Needs the whole folder at once: what a site repeats is only visible across its articles.
    With `cache` (`index.article_cache`), a text seen before is not split again: its keys
    are counted from their digests, and its spans reused when its site repeats the same of
    them as then; the result is the same as without.
    """
    if cache is not None:
        return _mark_cached(articles, cache)
    parsed = [(a, _blocks(a.text)) for a in articles]
    repeated = _repeated(parsed)
    return [
        dataclasses.replace(
            a,
            boilerplate=tuple(_detect(a.text, blocks, repeated.get(site_of(a), frozenset()))),
        )
        for a, blocks in parsed
    ]


def boilerplate_of(article: Article) -> list[Span]:
    """The article's boilerplate spans: as marked for its corpus, else from its text alone."""
    if article.boilerplate is not None:
        return list(article.boilerplate)
    return detect(article.text)


def _mark_cached(articles: Sequence[Article], cache: ArticleCache) -> list[Article]:
    """`mark_boilerplate` with per-text work cached. `_detect` looks up in `repeated` only
    the text's own block and sentence keys (`_keys`; shorter ones are never repeated), so
    its spans depend on the corpus only through `repeated` & those keys: the `hits`."""
    from .article_cache import BlockEntry, key_digest, text_digest

    entries: list[tuple[bytes, BlockEntry | None, frozenset[bytes]]] = []
    fresh: dict[int, tuple[list[_Block], dict[bytes, str]]] = {}  # texts split here: blocks, keys
    titles: dict[str, dict[bytes, set[str]]] = defaultdict(lambda: defaultdict(set))
    for i, a in enumerate(articles):
        digest = text_digest(a.text)
        entry = cache.blocks(digest)
        if entry is not None:
            keys = entry.keys
        else:
            blocks = _blocks(a.text)
            named = {key_digest(k): k for k in _keys(a.text, blocks)}
            fresh[i], keys = (blocks, named), frozenset(named)
        entries.append((digest, entry, keys))
        seen, title = titles[site_of(a)], a.title.casefold()
        for k in keys:
            seen[k].add(title)
    repeated = {
        site: frozenset(k for k, t in seen.items() if len(t) >= MIN_REPEATS)
        for site, seen in titles.items()
    }
    out: list[Article] = []
    for i, (a, (digest, entry, keys)) in enumerate(zip(articles, entries, strict=True)):
        hits = keys & repeated.get(site_of(a), frozenset())
        if entry is not None and entry.hits == hits:
            spans = entry.spans
        else:
            if i in fresh:
                blocks, named = fresh.pop(i)
            else:
                blocks = _blocks(a.text)
                named = {key_digest(k): k for k in _keys(a.text, blocks)}
            found = frozenset(named[k] for k in hits)
            spans = tuple(_detect(a.text, blocks, found))
            cache.put_blocks(digest, BlockEntry(keys, hits, spans))
        out.append(dataclasses.replace(a, boilerplate=spans))
    return out
