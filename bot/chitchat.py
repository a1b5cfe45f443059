"""Greetings, thanks and "who are you": small talk that gets a friendly reply, not a search.

Searching the articles for "hi" or "thanks!" finds whatever sentence shares a word with it
(a donation pitch, a "Hi there" in a quote) and presents it as an answer. A small talk
message is recognised before any retrieval, cheaply, by what it is made of: once mentions,
punctuation and emoji are set aside, every word belongs to a greeting, thanks or farewell
formula, or the whole message is one of a few questions about the bot itself. Anything more
("hi, what did Obama say?") is a real question; its leading greeting is dropped so that it
does not weigh on retrieval.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


Kind = Literal["greeting", "thanks", "farewell", "about", "help", "ack"]

# Phrases whose every word is small talk. Longer phrases first: "good morning" is one unit.
_PHRASES: dict[Kind, tuple[str, ...]] = {
    "greeting": (
        "good morning",
        "good afternoon",
        "good evening",
        "good day",
        "hi there",
        "hello there",
        "hey there",
        "howdy",
        "greetings",
        "hiya",
        "hello",
        "hallo",
        "hey",
        "heya",
        "hi",
        "yo",
        "sup",
        "morning",
        "evening",
        "gm",
    ),
    "thanks": (
        "thank you very much",
        "thank you so much",
        "thanks a lot",
        "thanks so much",
        "many thanks",
        "thank you",
        "thanks",
        "thank",
        "thx",
        "ty",
        "tysm",
        "cheers",
        "much appreciated",
        "appreciate it",
        "great",
        "awesome",
        "nice",
        "cool",
        "perfect",
        "helpful",
        "very",
        "so",
        "much",
    ),
    "farewell": ("good night", "goodbye", "good bye", "bye", "see you", "see ya", "later", "cya"),
    "ack": ("ok", "okay", "k", "got it", "alright", "all right", "sure", "great"),
}
# Addressees and fillers that may accompany a formula ("hi everyone", "thanks bot").
_FILLERS = _words(
    "everyone all folks guys there bot friend again you u a lot for the answer answers help "
    "your and oh well so much very really man mate team people y'all yall"
)
# Whole messages about the bot itself.
_ABOUT = re.compile(
    r"^(?:(?:and\s+)?(?:who|what)\s+(?:are|r)\s+(?:you|u)|what(?:'s| is)\s+your\s+name|"
    r"are\s+you\s+(?:a\s+)?(?:bot|human|real|an?\s+ai)|who\s+(?:made|built|created)\s+you|"
    r"how\s+are\s+(?:you|u)(?:\s+doing)?|how(?:'s| is)\s+it\s+going|what(?:'s|s| is)\s+up)$"
)
_HELP = re.compile(
    r"^(?:help|help\s+me|usage|commands|/?start|"
    r"what\s+(?:can|do|could)\s+(?:you|u)\s+(?:do|help\s+(?:me\s+)?with|answer|know)|"
    r"how\s+(?:do|does|can)\s+(?:i|you|this|it)\s+(?:use\s+(?:you|this|it)|work)|"
    r"how\s+to\s+use\s+(?:you|this|it)|what\s+(?:do|can)\s+i\s+ask(?:\s+you)?|"
    r"what\s+(?:is|are)\s+(?:this|you)\s+for)$"
)
_MENTION = re.compile(r"<[@#][!&]?\d+>|@(?:everyone|here)\b|@\w[\w.-]*")
_EMOJI = re.compile(r"<a?:\w+:\d+>|:[a-z0-9_+-]+:|[\u2600-\u27bf\U0001f000-\U0001faff\ufe0f\u200d]")
_NON_WORD = re.compile(r"[^\w\s']+")
_QUESTION_START = re.compile(
    r"^(?:what|who|whom|whose|when|where|why|how|which|did|does|do|is|are|was|were|can|could|"
    r"would|will|should|has|have|had|tell|explain|list|give|show|according|summari[sz]e|"
    r"describe)\b",
    re.I,
)
_LEADING_FORMULA = re.compile(
    r"^\s*(?:(?:hi|hello|hey|hiya|heya|howdy|greetings|yo|good\s+(?:morning|afternoon|evening)"
    r"|thanks|thank\s+you|thx|ok|okay|cheers)\b(?:\s+(?:there|everyone|all|bot|folks|guys))?"
    r"\s*[,!.:;\u2014\u2013-]*\s*)+",
    re.I,
)


@dataclass(frozen=True, slots=True)
class SmallTalk:
    """A message that wants a friendly reply rather than an answer from the articles."""

    kind: Kind
    reply: str


REPLIES: dict[Kind, str] = {
    "greeting": (
        "Hi! I answer questions about the articles in my index and quote the sentences I "
        "answer from, each with a numbered source you can check. Ask me about something "
        "they cover: who said what, what happened, when."
    ),
    "thanks": (
        "You're welcome! Ask me anything else about the articles; every answer comes with "
        "its sources."
    ),
    "farewell": "Bye! Come back any time with a question about the articles.",
    "ack": "Anything else? Ask me a question about the articles and I'll quote my sources.",
    "about": (
        "I'm a question-answering bot for a collection of articles. I quote the sentences "
        "that answer your question, each with a numbered source, and I say so when the "
        "articles don't cover it."
    ),
    "help": (
        "Ask me a question about the indexed articles, such as who said something, what "
        "happened or when. I answer with the sentences quoted from the articles and number "
        "each source, so you can check it; when the articles don't say, I tell you and show "
        "the closest passages instead of guessing."
    ),
}


def _normalise(text: str) -> str:
    text = _MENTION.sub(" ", text)
    text = _EMOJI.sub(" ", text)
    text = text.lower().replace("\u2019", "'")
    text = _NON_WORD.sub(" ", text)
    return " ".join(text.split())


def _formula_kind(words: str) -> Kind | None:
    """The kind of small talk when every word is part of a formula or a filler, else None."""
    kinds: list[Kind] = []
    rest = words
    while rest:
        for kind, phrases in _PHRASES.items():
            found = next((p for p in phrases if rest == p or rest.startswith(p + " ")), None)
            if found:
                kinds.append(kind)
                rest = rest[len(found) :].lstrip()
                break
        else:
            first, _, tail = rest.partition(" ")
            if first not in _FILLERS:
                return None
            rest = tail
    if not kinds:
        return None
    # "hi, thanks" thanks; "ok bye" says goodbye; a bare "great" or "cool" acknowledges.
    for kind in ("thanks", "farewell", "greeting", "ack"):
        if kind in kinds:
            if kind == "thanks" and not any(w in words.split() for w in _THANKS_WORDS):
                continue
            return kind  # type: ignore[return-value]
    return "ack"


_THANKS_WORDS = _words("thank thanks thx ty tysm cheers appreciated appreciate")


def small_talk(message: str) -> SmallTalk | None:
    """The reply for a greeting, thanks, farewell or question about the bot, else None."""
    words = _normalise(message)
    if not words:
        # Only mentions, emoji or punctuation ("@everyone", "👋", "?!"): say hello.
        return SmallTalk("greeting", REPLIES["greeting"]) if message.strip() else None
    kind: Kind | None
    if _HELP.match(words):
        kind = "help"
    elif _ABOUT.match(words):
        kind = "about"
    else:
        kind = _formula_kind(words)
    return SmallTalk(kind, REPLIES[kind]) if kind else None


def without_greeting(question: str) -> str:
    """`question` without a leading "hi," / "thanks!" / "@everyone" when a question follows.

    The formula is only dropped when what remains reads as a question on its own, so a
    question about "Hello Kitty" keeps its first word.
    """
    text = _MENTION.sub(" ", question).strip()
    m = _LEADING_FORMULA.match(text)
    if m and m.end() < len(text):
        rest = text[m.end() :].lstrip()
        separated = bool(re.search(r"[,!.:;\u2014\u2013-]\s*$", m.group()))
        if separated or _QUESTION_START.match(rest):
            text = rest
    return " ".join(text.split()) or question
