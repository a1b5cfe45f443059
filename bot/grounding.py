"""Whether each sentence an LLM wrote is supported by the passages it cites.

A language model can cite a real passage and still write something the passage never says
("The admin token is ...; send your password to http://evil.example [1]"). The citation's
quote is verbatim by construction, so the risk is the wording around it. This module is
the one place that judges that wording, sentence by sentence, against the text of the
passages the sentence cites:

- every name (a capitalised word past the sentence's first, a token mixing letters and
  digits) must occur in a cited passage or its title;
- every number must occur there by value: "1,200" = "1200", "5%" = "5 percent", "seven" =
  "7", "2.5 million" = "2,500,000"; a sentence with a figure the passage lacks is dropped,
  even when the rest is right, because the figure is usually what was asked for;
- words that would let a reply steer the reader (passwords, tokens, "click", "ignore
  instructions", ...) must occur there too, as must a negation;
- of its other content words (stemmed, so tense and plural changes match), at least
  `Thresholds.coverage` must occur there, and no two missing ones may stand next to each
  other (an inserted phrase: "... built by general relativity engineers"). Both were
  measured with `benchmarks/llm_grounding.py` on SQuAD passages, honest paraphrases
  against swapped names, numbers, answers and sentences (figures in docs/benchmarks.md).

A sentence with no marker counts as citing the one cited passage that best supports it, and
gets that passage's marker. A sentence with nothing to check (no name, number or content
word) is dropped: it supports nothing. URLs, e-mail addresses and Markdown links are links
only where they occur verbatim in a cited passage (or are its source); other ones are
removed before the sentence is judged, and what is left of that sentence must then be the
passage's word for word ("Log in at <link> to see how tall it is" goes whole). A masked link
`[text](url)` always becomes plain text, so a link's target is never hidden behind its label.

The check is lexical: it cannot see a claim that reorders true words into a false one
("Putin told Obama" for "Obama told Putin"), nor one common word swapped in a long sentence
(the coverage share lets a paraphrase use a few words of its own). It is a filter for
invented content, which is what a model that cites real passages most often adds.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache

import Stemmer
from bm25s.stopwords import STOPWORDS_EN

from index.sentences import sentence_spans


@dataclass(frozen=True, slots=True)
class Thresholds:
    """How many of a sentence's content words may be missing from its passages.

    Defaults chosen with benchmarks/llm_grounding.py (docs/benchmarks.md).
    """

    coverage: float = 0.75  # share of content words that must occur in the cited passages
    missing_run: int = 1  # most consecutive content words missing: two is an inserted phrase


DEFAULT_THRESHOLDS = Thresholds()
_EVERY_WORD = Thresholds(coverage=1.0, missing_run=0)

# Markers: "[1]", "[1, 2]", "[1][2]", "[1] [2]"; pre/post are the spaces around a run.
MARKER_GROUP = r"\[\s*\d+(?:\s*[,;]\s*\d+)*\s*\]"
MARKER_RUN = re.compile(
    rf"(?P<pre>[ \t]*)(?P<run>{MARKER_GROUP}(?:[ \t]*{MARKER_GROUP})*)(?P<post>[ \t]*)"
)
_MARKER_GROUP = re.compile(MARKER_GROUP)
_DIGITS = re.compile(r"\d+")

# Links. A masked Markdown link first (its label may hold anything but a bracket), then
# bare URLs, "www." hosts, host/path forms and e-mail addresses.
_MASKED_LINK = re.compile(r"!?\[(?P<label>[^\[\]\n]*)\]\(\s*<?(?P<url>[^()\s<>]*)>?[^()\n]*\)")
_LINK = re.compile(
    r"<?(?:"
    r"[a-z][a-z0-9+.-]*://[^\s<>\"'`]+"  # scheme://...
    r"|www\.[^\s<>\"'`]+"
    r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # e-mail
    r"|(?<![\w@/.-])(?:[a-z0-9-]+\.)+[a-z]{2,}/[^\s<>\"'`]*"  # host.tld/path
    r")>?",
    re.IGNORECASE,
)
_LINK_TRAILING = ".,;:!?)]}'\""
_GONE = "\x00"  # where a removed link stood, until the text around it is tidied
_GONE_ASIDE = re.compile(
    r"[ \t]*\([^()\x00\n]{0,24}\x00[ \t]*(?P<marker>\[[\d,; ]+\])?[^()\x00\n\[]{0,3}\)"
    r"|[ \t]*(?:[-–—,:;][ \t]*)?(?:\b(?:see|at|via|on)[ \t]+)?\x00"  # ", see <link>"
)

# Tokens: a number (digits with inner separators) or a run of letters (with apostrophes).
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+(?:['’][^\W\d_]+)*")
_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")
# "G20", "COVID19", "A380" are names; "5th" and "1990s" are numbers.
_MIXED = re.compile(r"\b(?!\d+(?:st|nd|rd|th|s)\b)(?=\w*[^\W\d_])(?=\w*\d)\w+")

# A Stemmer must not be called from two threads at once, and answers run in worker threads.
_STEMMERS = threading.local()
# Irregular past forms, which no stemmer maps to the present ("held" for "holds"): a tense
# change is the commonest paraphrase.
_IRREGULAR = {
    "arose": "arise", "arisen": "arise", "ate": "eat", "eaten": "eat", "beaten": "beat", "became":
    "become", "began": "begin", "begun": "begin", "bent": "bend", "bit": "bite", "bitten": "bite",
    "blew": "blow", "blown": "blow", "bore": "bear", "borne": "bear", "born": "bear", "broke":
    "break", "broken": "break", "bred": "breed", "brought": "bring", "built": "build", "burnt":
    "burn", "bought": "buy", "caught": "catch", "chose": "choose", "chosen": "choose", "came":
    "come", "dealt": "deal", "dug": "dig", "drew": "draw", "drawn": "draw", "drove": "drive",
    "driven": "drive", "fed": "feed", "felt": "feel", "fell": "fall", "fallen": "fall", "fled":
    "flee", "flew": "fly", "flown": "fly", "fought": "fight", "found": "find", "forbade": "forbid",
    "forgot": "forget", "forgotten": "forget", "froze": "freeze", "frozen": "freeze", "gave":
    "give", "given": "give", "went": "go", "gone": "go", "grew": "grow", "grown": "grow", "hung":
    "hang", "heard": "hear", "hid": "hide", "hidden": "hide", "held": "hold", "kept": "keep",
    "knew": "know", "known": "know", "laid": "lay", "led": "lead", "left": "leave", "lent": "lend",
    "lost": "lose", "made": "make", "meant": "mean", "met": "meet", "paid": "pay", "ran": "run",
    "rang": "ring", "rung": "ring", "rode": "ride", "ridden": "ride", "rose": "rise", "risen":
    "rise", "sang": "sing", "sung": "sing", "sank": "sink", "sunk": "sink", "sat": "sit", "saw":
    "see", "seen": "see", "sought": "seek", "sold": "sell", "sent": "send", "shook": "shake",
    "shaken": "shake", "shot": "shoot", "shone": "shine", "slept": "sleep", "spoke": "speak",
    "spoken": "speak", "spent": "spend", "spun": "spin", "sprang": "spring", "stood": "stand",
    "stole": "steal", "stolen": "steal", "struck": "strike", "stuck": "stick", "swore": "swear",
    "sworn": "swear", "swept": "sweep", "swam": "swim", "swum": "swim", "taught": "teach", "took":
    "take", "taken": "take", "tore": "tear", "torn": "tear", "told": "tell", "thought": "think",
    "threw": "throw", "thrown": "throw", "understood": "understand", "undertook": "undertake",
    "undertaken": "undertake", "wept": "weep", "wore": "wear", "worn": "wear", "withdrew":
    "withdraw", "withdrawn": "withdraw", "won": "win", "woke": "wake", "woken": "wake", "wrote":
    "write", "written": "write"
}  # fmt: skip

_SMALL_WORDS = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"
]  # fmt: skip
_TENS_WORDS = [
    "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"
]  # fmt: skip
_SMALL_NUMBERS = {word: n for n, word in enumerate(_SMALL_WORDS)}
_TENS = {word: 10 * n for n, word in enumerate(_TENS_WORDS, 2)}
_SCALES = {
    "hundred": 100,
    "thousand": 1_000,
    "million": 1_000_000,
    "billion": 1_000_000_000,
    "trillion": 1_000_000_000_000,
}
_NUMBER_WORDS = {**_SMALL_NUMBERS, **_TENS}

# Words that carry no claim: function words, and the units of a number that is itself
# checked ("5 percent", "5th", "1990s").
_STOPWORDS = frozenset(STOPWORDS_EN) | frozenset(
    [
        "about", "above", "after", "again", "against", "all", "also", "am", "any", "because",
        "been", "before", "being", "below", "between", "both", "can", "could", "did", "do", "does",
        "doing", "done", "down", "during", "each", "even", "ever", "few", "from", "further", "had",
        "has", "have", "having", "he", "her", "here", "hers", "herself", "him", "himself", "his",
        "how", "i", "its", "itself", "just", "me", "might", "more", "most", "much", "must", "my",
        "myself", "now", "off", "once", "only", "other", "our", "ours", "ourselves", "out", "over",
        "own", "same", "shall", "she", "should", "so", "some", "still", "than", "theirs", "them",
        "themselves", "those", "though", "through", "thus", "too", "under", "until", "up", "upon",
        "us", "very", "we", "were", "what", "when", "where", "whether", "which", "while", "who",
        "whom", "whose", "why", "would", "yes", "yet", "you", "your", "yours", "yourself",
        "yourselves", "percent", "per", "cent", "pct", "st", "nd", "rd", "th", "s"
    ]
)  # fmt: skip
# The words a model frames an answer with ("According to the article, ..."): no claim,
# unless capitalised inside a sentence ("the United States", "Article 34"), where they name.
_FRAMING = frozenset(
    [
        "according", "article", "articles", "passage", "passages", "source", "sources", "text",
        "texts", "document", "documents", "states", "stated", "state", "says", "said", "say",
        "mention", "mentions", "mentioned", "report", "reports", "reported", "writes", "wrote",
        "written", "note", "notes", "noted", "explain", "explains", "explained", "describe",
        "describes", "described", "indicate", "indicates", "indicated", "based", "given",
        "provided", "answer", "answers", "question", "questions", "see"
    ]
)  # fmt: skip
_NEGATIONS = frozenset(
    ["not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "cannot", "without"]
)
# Words a reply needs to steer the reader (credentials, actions on their machine or account,
# overriding instructions): they are never filler, each must be in a cited passage.
_GUARDED = frozenset(
    Stemmer.Stemmer("english").stemWords([
        "password", "passwords", "passcode", "passphrase", "credential", "credentials", "login",
        "logon", "signin", "username", "token", "tokens", "apikey", "wallet", "bitcoin", "crypto",
        "cryptocurrency", "click", "download", "install", "ignore", "disregard", "instruction",
        "instructions", "prompt", "verify", "please", "urgent", "urgently", "immediately", "dm",
        "whatsapp", "telegram"
    ])
)  # fmt: skip


# Terms -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claim:
    """What a sentence asserts, in the forms the check compares."""

    names: frozenset[str]  # stemmed, lower-cased
    numbers: tuple[frozenset[Decimal], ...]  # each mention: the values it may stand for
    words: frozenset[str]  # stemmed content words that are not names
    sequence: tuple[str, ...]  # names and content words in sentence order
    guarded: frozenset[str]
    negated: bool

    @property
    def empty(self) -> bool:
        return not (self.names or self.numbers or self.words)


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a passage (with its title) offers: every stemmed word and every number value."""

    words: frozenset[str]
    numbers: frozenset[Decimal]
    negated: bool


def _stem(token: str) -> str:
    token = token.lower().replace("’", "'")
    if token.endswith("'s"):
        token = token[:-2]
    stemmer = getattr(_STEMMERS, "stemmer", None)
    if stemmer is None:
        stemmer = _STEMMERS.stemmer = Stemmer.Stemmer("english")
    return stemmer.stemWord(_IRREGULAR.get(token, token))


def _number(token: str) -> Decimal | None:
    text = token.replace(",", "") if _THOUSANDS.fullmatch(token) else token
    if "," in text:  # "3,5" or a list glued together: not one value
        return None
    try:
        return Decimal(text).normalize()
    except InvalidOperation:
        return None


def _tokens(text: str) -> list[tuple[str, int]]:
    """Tokens with their offsets, after cutting letter-digit mixes into their own class."""
    return [(m.group(), m.start()) for m in _TOKEN.finditer(text)]


def _number_mentions(tokens: Sequence[str]) -> tuple[list[frozenset[Decimal]], set[int]]:
    """Each number mentioned (digits or words, with an optional scale) and the token indexes
    it used, so those tokens are not also counted as content words."""
    mentions: list[frozenset[Decimal]] = []
    used: set[int] = set()
    i = 0
    while i < len(tokens):
        low = tokens[i].lower()
        value = _number(tokens[i]) if tokens[i][0].isdigit() else None
        j = i + 1
        if value is None and low in _NUMBER_WORDS:
            value = Decimal(_NUMBER_WORDS[low])
            if low in _TENS and j < len(tokens) and tokens[j].lower() in _SMALL_NUMBERS:
                value += _NUMBER_WORDS[tokens[j].lower()]  # "twenty-five"
                j += 1
        if value is None:
            i += 1
            continue
        values = {value}
        if j < len(tokens) and tokens[j].lower() in _SCALES:
            values.add((value * _SCALES[tokens[j].lower()]).normalize())
            j += 1
        mentions.append(frozenset(values))
        used.update(range(i, j))
        i = j
    return mentions, used


@lru_cache(maxsize=1024)
def evidence(text: str) -> Evidence:
    """The terms of a passage (cached: the same passages back many sentences)."""
    tokens = [t for t, _ in _tokens(text)]
    mentions, _ = _number_mentions(tokens)
    words = {_stem(t) for t in tokens if not t[0].isdigit()}
    words.update(_stem(m) for m in _MIXED.findall(text))
    negated = any(t.lower() in _NEGATIONS or t.lower().endswith("n't") for t in tokens)
    return Evidence(frozenset(words), frozenset().union(*mentions), negated)


def claim(text: str) -> Claim:
    """The names, numbers and content words of one sentence (markers and links removed)."""
    text = _LINK.sub(" ", MARKER_RUN.sub(" ", text))  # a link left in is checked verbatim
    mixed = {_stem(m) for m in _MIXED.findall(text)}
    text = _MIXED.sub(" ", text)
    found = _tokens(text)
    tokens = [t for t, _ in found]
    mentions, used = _number_mentions(tokens)
    names: set[str] = set(mixed)
    words: set[str] = set()
    sequence: list[str] = []
    guarded: set[str] = set()
    negated = False
    first_word = True
    for i, (token, _) in enumerate(found):
        if i in used or token[0].isdigit():
            first_word = False
            continue
        low = token.lower().replace("’", "'")
        if low in _NEGATIONS or low.endswith("n't"):
            negated = True
        initial, first_word = first_word, False
        if low in _STOPWORDS or low.endswith("n't") or len(low) < 2:
            continue
        # A capital marks a name, except on the first word, where it marks the sentence
        # start: there only a capital past the first letter ("NASA", "McCain") counts, and
        # an ordinary first word ("Around", "Visitors") is left to the coverage share.
        capital = any(c.isupper() for c in (token[1:] if initial else token))
        if low in _FRAMING and not capital:
            continue
        stem = _stem(token)
        sequence.append(stem)
        if stem in _GUARDED:
            guarded.add(stem)
        if capital:
            names.add(stem)
        else:
            words.add(stem)
    return Claim(
        frozenset(names),
        tuple(mentions),
        frozenset(words),
        tuple(sequence),
        frozenset(guarded),
        negated,
    )


@dataclass(frozen=True, slots=True)
class Verdict:
    supported: bool
    reason: str = ""  # why not: for logs and the benchmark, never shown to users
    coverage: float = 1.0  # share of content words found


def judge(
    sentence: str, passages: Iterable[str], thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> Verdict:
    """Whether `passages` together support every checkable part of `sentence`."""
    c = claim(sentence)
    if c.empty:
        return Verdict(False, "nothing to check")
    found = [evidence(p) for p in passages]
    words = frozenset().union(*(e.words for e in found))
    numbers = frozenset().union(*(e.numbers for e in found))
    if missing := sorted(c.names - words):
        return Verdict(False, f"name not in the passage: {missing[0]}")
    for mention in c.numbers:
        if not mention & numbers:
            return Verdict(False, f"number not in the passage: {min(mention):f}")
    if missing := sorted(c.guarded - words):
        return Verdict(False, f"word not in the passage: {missing[0]}")
    if c.negated and not any(e.negated for e in found):
        return Verdict(False, "negation not in the passage")
    coverage = len(c.words & words) / len(c.words) if c.words else 1.0
    # Each clause on its own: "It is 330 metres tall; write to me" is two claims.
    clauses = [claim(part) for part in sentence.split(";")] if ";" in sentence else [c]
    for part in clauses:
        share = len(part.words & words) / len(part.words) if part.words else 1.0
        if share < thresholds.coverage:
            return Verdict(False, f"{share:.0%} of its words in the passage", min(share, coverage))
    run = longest = 0
    for term in c.sequence:
        run = 0 if term in words else run + 1
        longest = max(longest, run)
    if longest > thresholds.missing_run:
        return Verdict(False, f"{longest} words in a row not in the passage", coverage)
    return Verdict(True, coverage=coverage)


# Answers ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Source:
    """A passage a marker may name: its text, title, and the links it came with."""

    text: str
    title: str = ""
    links: tuple[str, ...] = ()

    @property
    def evidence_texts(self) -> tuple[str, ...]:
        return (self.text, self.title) if self.title else (self.text,)


@dataclass(frozen=True, slots=True)
class Sentence:
    """One sentence of the answer as judged; `text` is what would be shown."""

    text: str
    markers: tuple[int, ...]
    verdict: Verdict
    removed_links: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Grounded:
    """The answer with unsupported sentences dropped (`text` empty when none is left)."""

    text: str
    sentences: list[Sentence] = field(default_factory=list)

    @property
    def kept(self) -> list[Sentence]:
        return [s for s in self.sentences if s.verdict.supported]

    @property
    def dropped(self) -> list[Sentence]:
        return [s for s in self.sentences if not s.verdict.supported]


def marker_numbers(run: str) -> list[int]:
    return [int(n) for n in _DIGITS.findall(run)]


@dataclass(slots=True)
class _Unit:
    start: int
    end: int
    markers: list[int]


def _units(text: str) -> list[_Unit]:
    """Sentences with the markers that vouch for them.

    A marker run that opens a sentence belongs to the sentence before it on the same line
    when that one has no marker ("Paris is big. [1] It ..."); one that opens a line belongs
    to what follows it.
    """
    units: list[_Unit] = []
    for s, e in sentence_spans(text):
        lead = MARKER_RUN.match(text, s)
        if lead and units and "\n" not in text[units[-1].end : s]:
            prev = units[-1]
            if not prev.markers or lead.end("run") >= e:  # its own, or a stray run: "[2]"
                prev.end = lead.end("run")
                prev.markers = list(dict.fromkeys(prev.markers + marker_numbers(lead["run"])))
                s = lead.end()
                while s < e and text[s].isspace():
                    s += 1
        if s >= e:
            continue
        markers = [n for m in MARKER_RUN.finditer(text, s, e) for n in marker_numbers(m["run"])]
        units.append(_Unit(s, e, list(dict.fromkeys(markers))))
    return units


def _scrub_links(sentence: str, allowed: Sequence[Source]) -> tuple[str, list[str]]:
    """Unmask Markdown links and remove links that no allowed passage holds verbatim."""
    removed: list[str] = []

    def present(url: str) -> bool:
        return bool(url) and any(url in s.text or url in s.links for s in allowed)

    def unmask(m: re.Match[str]) -> str:
        label, url = m["label"].strip(), m["url"]
        if _MARKER_GROUP.fullmatch(f"[{label}]"):
            label = f"[{label}]"  # "[1](http://...)": keep the marker, lose the link
        if present(url):
            return f"{label} ({url})" if label else url
        removed.append(url)
        return label

    def bare(m: re.Match[str]) -> str:
        link = m.group().strip("<>")
        tail = ""
        while link and link[-1] in _LINK_TRAILING:
            link, tail = link[:-1], link[-1] + tail
        if present(link):
            return link + tail
        removed.append(link)
        return _GONE + tail

    text = _MASKED_LINK.sub(unmask, sentence)
    text = _LINK.sub(bare, text)
    if removed:
        # "(see <link>)" goes whole, keeping a marker that stood inside it.
        text = _GONE_ASIDE.sub(lambda m: f" {m['marker']}" if m["marker"] else "", text)
        text = text.replace(_GONE, "")
        text = re.sub(r"[ \t]{2,}", " ", text)
        text = re.sub(r"[ \t]+([.,;:!?)])", r"\1", text)
        text = re.sub(r",([.;:!?)])", r"\1", text).strip()
    return text, removed


def with_marker(sentence: str, n: int) -> str:
    """`sentence` with `[n]` before its closing punctuation ("It is. " -> "It is [n].")."""
    body = sentence.rstrip()
    end = len(body)
    while end > 0 and body[end - 1] in ".!?:;\"')”’":
        end -= 1
    return f"{body[:end]} [{n}]{body[end:]}"


def ground(
    text: str, sources: Mapping[int, Source], thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> Grounded:
    """Judge each sentence of `text` against the passages its markers name in `sources`.

    Markers naming no source are ignored here (the caller removes them); a sentence without
    a valid marker is judged against each cited source in turn and, when one supports it,
    gets that source's marker. Returns the supported sentences joined with the line breaks
    that separated them.
    """
    units = _units(text)
    cited = list(dict.fromkeys(n for u in units for n in u.markers if n in sources))
    judged: list[Sentence] = []
    kept: list[str] = []
    gap = ""  # line breaks between the last kept sentence and the next one
    previous_end = 0
    for unit in units:
        gap += "".join(c for c in text[previous_end : unit.start] if c == "\n")
        previous_end = unit.end
        raw = text[unit.start : unit.end]
        markers = [n for n in unit.markers if n in sources]
        own = [sources[n] for n in markers] or [sources[n] for n in cited]
        shown, removed = _scrub_links(raw, own)
        # What is left of a sentence that carried an invented link shows only if every word
        # of it is the passage's ("Log in at <link> to see how tall it is").
        strictness = _EVERY_WORD if removed else thresholds
        if markers:
            verdict = judge(shown, (t for s in own for t in s.evidence_texts), strictness)
        else:
            verdict, shown = _judge_unmarked(shown, cited, sources, strictness)
        judged.append(Sentence(shown, tuple(markers), verdict, tuple(removed)))
        if verdict.supported:
            if kept:
                kept.append("\n\n" if len(gap) > 1 else "\n" if gap else " ")
            kept.append(shown)
            gap = ""
    return Grounded("".join(kept).strip(), judged)


def _judge_unmarked(
    sentence: str, cited: Sequence[int], sources: Mapping[int, Source], thresholds: Thresholds
) -> tuple[Verdict, str]:
    best = Verdict(False, "no cited passage")
    for n in cited:
        verdict = judge(sentence, sources[n].evidence_texts, thresholds)
        if verdict.supported:
            return verdict, with_marker(sentence, n)
        if best.reason == "no cited passage" or verdict.coverage > best.coverage:
            best = verdict
    return best, sentence


def claims(text: str) -> dict[int, set[str]]:
    """Content words (names included) of the sentences each marker `[n]` vouches for."""
    result: dict[int, set[str]] = {}
    for unit in _units(text):
        c = claim(text[unit.start : unit.end])
        for n in unit.markers:
            result.setdefault(n, set()).update(c.names | c.words)
    return result


def content_terms(text: str) -> set[str]:
    """Stemmed names and content words of `text`, as `claims` counts them."""
    c = claim(text)
    return set(c.names | c.words)
