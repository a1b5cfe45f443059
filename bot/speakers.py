"""Whose words a sentence of news copy reports, for "what did X say" and "who said" questions.

A reader asking what Obama said to Putin wants Obama's own words: a direct quote attributed
to him (`"... if he didn't," Mr Obama said.`) or his reported speech (`Mr Obama told
reporters ...`), not somebody else's account of the meeting (`... when Obama told Mr Putin to
"cut it out", the Kremlin has said.`), although that account shares more words with the
question. Wire copy marks the speaker in a few fixed places, and these rules read them:

* a trailing attribution after the quote or the last comma (`," Mr Obama said.`, `, the
  Kremlin has said.`, `," said Yuri Ushakov.`) names the speaker of the whole sentence, even
  when the sentence reports someone else's words inside it;
* otherwise a leading one: the subject of a speech verb at the start (`Three US officials
  said on Thursday that ...`, `According to the ministry, ...`);
* a sentence inside a quotation takes the attribution of the quotation, wherever it sits in
  the paragraph, and a paragraph that is all quote with no attribution continues the
  previous speaker; a pronoun subject (`He also claimed ...`) continues the last named one.

Only attribution is read here; what the sentence says is judged by the ranker.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_VERBS = (
    r"said|says|say|saying|told|tells|tell|warned|warns|warning|announced|announces|"
    r"promised|promises|claimed|claims|added|adds|insisted|insists|argued|argues|explained|"
    r"explains|stated|states|declared|declares|replied|replies|responded|responds|answered|"
    r"wrote|writes|tweeted|posted|threatened|threatens|vowed|vows|pledged|pledges|urged|"
    r"urges|admitted|admits|denied|denies|acknowledged|acknowledges|confirmed|confirms|"
    r"revealed|reveals|suggested|suggests|predicted|predicts|noted|notes|stressed|stresses|"
    r"complained|complains|asked|asks|reported|reports|cautioned|cautions|conceded|concedes|"
    r"recalled|recalls|remarked|remarks|boasted|joked|quipped|estimated|estimates|called|"
    r"was quoted as saying|were quoted as saying|is quoted as saying|is quoted as telling|"
    r"was quoted as telling|said in a statement|told reporters|told journalists"
)
_AUX = r"(?:(?:has|have|had|was|were|is|are|will|would|later|also|then|previously|earlier)\s+)*"
_QUOTES = '"\u201c\u201d'
_OPEN = "\u201c"
_CLOSE = "\u201d"

# `, the Kremlin has said.` / `," Mr Obama said.` / `," he told reporters on Friday.`
_TRAILING = re.compile(
    rf"[,{_QUOTES}]\s*(?P<spk>[^,;:{_QUOTES}]{{1,80}}?)\s+{_AUX}(?P<verb>{_VERBS})\b"
    rf"[^,;:{_QUOTES}.!?]{{0,80}}[.!]?\s*$"
)
# `," said Mr Obama.` / `," said Yuri Ushakov, a Kremlin aide.`
_TRAILING_INVERTED = re.compile(
    rf"[,{_QUOTES}]\s*(?:said|says|added|adds|asked|asks|wrote|writes|warned|warns|explained|"
    rf"replied|insisted|continued|recalled)\s+(?P<spk>[^,;:{_QUOTES}]{{1,80}}?)"
    rf"(?:,[^{_QUOTES}]{{0,100}})?[.!]?\s*$"
)
# `," the alliance's organiser, Ben Adler, told the Harbour Times.`: read after the last
# closing quote, where an appositive's commas belong to the speaker.
_AFTER_QUOTE = re.compile(
    rf"^[\s,]*(?P<spk>[^;:{_QUOTES}]{{1,100}}?),?\s+{_AUX}(?P<verb>{_VERBS})\b"
    rf"[^;:{_QUOTES}]{{0,80}}[.!]?\s*$"
)
# `Mr Obama told reporters ...` / `Speaking on Monday, Obama said ...` / `He also claimed ...`
_LEADING = re.compile(
    rf"^(?:[^,;:{_QUOTES}]{{0,60}},\s+)?(?P<spk>[^,;:{_QUOTES}]{{1,80}}?),?\s+{_AUX}(?:{_VERBS})\b"
)
_ACCORDING = re.compile(rf"\baccording to (?P<spk>[^,;:{_QUOTES}.]{{1,80}})", re.I)
_PRONOUN = re.compile(r"^(?:he|she|they|it|we|i)$", re.I)
_NAME_WORD = re.compile(r"[A-Z][\w'’.-]*")
_SUBJECT = re.compile(
    r"^(?:(?:Mr|Mrs|Ms|Dr|Sir|Dame)\.?\s+)?(?:[A-Z][\w'’-]+\s+){0,3}[A-Z][\w'’-]+"
)
_WORD = re.compile(r"[a-z][a-z'’-]*")

# Words of a speaker phrase that say what someone is, not who: not enough to match on.
_TITLES = _words(
    "mr mrs ms miss dr sir dame lord lady president prime minister secretary general chief "
    "the a an his her their its our said says spokesman spokeswoman spokesperson aide senior "
    "official officials former foreign deputy vice chancellor governor senator rep "
    "representative mayor king queen prince minister's president's of to for and in on at "
    "new top us u.s uk russian american british chinese french german"
)
_STOP = _words(
    "the a an of to for and in on at about with from by over did does do has have had was "
    "is are were will would what who whom how why when where which that this these those "
    "his her their its it he she they him them say said says tell told"
)

Kind = Literal["say", "who"]
How = Literal["own", "continued"]


@dataclass(frozen=True, slots=True)
class SpeechQuestion:
    """A question about somebody's words: what `speaker` said ("say"), or who said it ("who")."""

    kind: Kind
    speaker: frozenset[str] = frozenset()  # name words of X, lower case ("obama")
    name: str = ""  # X as the question writes it ("Barack Obama")


@dataclass(frozen=True, slots=True)
class Speech:
    """Who is speaking in one sentence, as the copy attributes it.

    `speaker` is the attributed phrase ("Mr Obama", "the Kremlin"); `how` is "own" when the
    sentence or its quotation names the speaker, "continued" when it is a pronoun or an
    unattributed quote paragraph resolved to an earlier speaker. `attribution` is the span of
    the sentence that holds the attribution (the sentence itself, or a later one that closes
    its quotation).
    """

    speaker: str | None
    how: How | None
    attribution: tuple[int, int] | None = None
    reported: tuple[str, ...] = ()  # a leading speaker whose words the `speaker` relays


_SAY_Q = re.compile(
    rf"^(?:and\s+|so\s+)?what\s+(?:exactly\s+)?(?:did|does|do|has|have|had|will|would|was|is)\s+"
    rf"(?P<who>.+?)\s+(?:(?:have\s+to\s+|got\s+to\s+|just\s+)?(?:{_VERBS}|ask(?:ed)?|"
    rf"promise|claim|warn|announce|add|insist|argue|explain|reply|respond|answer|threaten|"
    rf"vow|pledge|urge|admit|deny|confirm|reveal|suggest|predict|note|stress|write|tweet|"
    rf"post|concede|recall|estimate))\b",
    re.I,
)
_SAY_Q_POSSESSIVE = re.compile(
    r"^(?:and\s+|so\s+)?what\s+(?:was|is|were|are)\s+(?P<who>.+?)['’]s?\s+"
    r"(?:response|reply|message|warning|answer|statement|comment|comments|view|views|"
    r"position|promise|claim|words|reaction|remarks|explanation|argument|prediction|"
    r"estimate|pledge|threat)\b",
    re.I,
)
_SAY_Q_HOW = re.compile(
    r"^(?:and\s+|so\s+)?how\s+(?:did|does|has|have)\s+(?P<who>.+?)\s+"
    r"(?:respond|react|reply|answer|explain|describe|justify)\b",
    re.I,
)
_SAY_Q_ACCORDING = re.compile(r"\baccording to (?P<who>[^,?]+)", re.I)
_WHO_Q = re.compile(
    rf"^(?:and\s+|so\s+)?who\s+(?:(?:has|had|was|were|is)\s+)?(?:also\s+)?(?:{_VERBS}|"
    r"quoted|warn|promise|claim|announce|predict|tweet|write)\b",
    re.I,
)


def speech_question(question: str) -> SpeechQuestion | None:
    """What the question asks about somebody's words, or None for other questions."""
    q = question.strip()
    if _WHO_Q.match(q):
        return SpeechQuestion("who")
    for pattern in (_SAY_Q, _SAY_Q_POSSESSIVE, _SAY_Q_HOW, _SAY_Q_ACCORDING):
        m = pattern.search(q) if pattern is _SAY_Q_ACCORDING else pattern.match(q)
        if m:
            words = name_words(m.group("who"))
            if words:
                return SpeechQuestion("say", words, m.group("who").strip())
    return None


def name_words(phrase: str) -> frozenset[str]:
    """The words of a speaker phrase that identify someone ("obama" in "Mr Barack Obama")."""
    words = {
        w.strip("'’.-").removesuffix("'s").removesuffix("’s") for w in _WORD.findall(phrase.lower())
    }
    named = frozenset(w for w in words if w and w not in _TITLES and w not in _STOP)
    # "the officials", "the president": no name, so the role is what identifies them.
    return named or frozenset(w for w in words if w and w not in _STOP and w not in _DETERMINERS)


def speeches(text: str, spans: Sequence[tuple[int, int]]) -> list[Speech]:
    """The speaker of each sentence `text[s:e]` of one passage, in order."""
    out: list[Speech] = []
    paragraphs = _paragraphs(text, spans)
    last_named: str | None = None
    for para in paragraphs:
        own = [_attribution(text[s:e]) for s, e in para]
        inside = _starts_inside_quote(text, para)
        # The quotation a sentence sits in is attributed where it closes (or opened).
        quote_owner: list[tuple[str, int] | None] = [None] * len(para)
        for i in range(len(para)):
            if inside[i] or _opens_quote(text[para[i][0] : para[i][1]]):
                for j in range(i, len(para)):
                    if own[j] is not None:
                        quote_owner[i] = (own[j], j)  # type: ignore[assignment]
                        break
                    if j + 1 < len(para) and not inside[j + 1]:
                        break
        para_speaker = next((x for x in own if x is not None), None)
        for i, (s, e) in enumerate(para):
            sentence = text[s:e]
            speaker, how, at = own[i], "own", (s, e)
            if speaker is None and quote_owner[i] is not None:
                speaker, j = quote_owner[i]  # type: ignore[misc]
                at = para[j]
            if speaker is None and _is_all_quote(sentence) and para_speaker is None:
                speaker, how, at = last_named, "continued", None
            if speaker is not None and _PRONOUN.match(speaker):
                speaker, how = last_named, "continued"
            if speaker is not None and how == "own" and name_words(speaker):
                last_named = speaker
            elif speaker is None:
                subject = _SUBJECT.match(sentence)
                if subject and name_words(subject.group()) and not _is_all_quote(sentence):
                    last_named = subject.group()
            named, relay = _attributions(sentence)
            relayed = tuple(named[1:]) if how == "own" and relay else ()
            out.append(
                Speech(speaker, how if speaker else None, at if speaker else None, relayed)  # type: ignore[arg-type]
            )
    return out


def speech_score(question: SpeechQuestion, speech: Speech, sentence: str) -> float:
    """How well a sentence's attribution fits the question, in [-1, 1].

    "say": 1 for X's own words, 0.75 for X's words through a pronoun or a continued quote,
    -1 for someone else's account that mentions X (the Kremlin on what Obama told Putin),
    0 otherwise. "who": 1 when the sentence names its speaker, 0.5 when the speaker is
    resolved from elsewhere (the name is then not in the sentence itself).
    """
    if question.kind == "who":
        if speech.speaker is None:
            return 0.0
        return 1.0 if speech.how == "own" else 0.5
    mentioned = bool(question.speaker & name_words(sentence))
    if speech.speaker is None:
        return 0.0
    if question.speaker & name_words(_own_part(speech.speaker)):
        return 1.0 if speech.how == "own" else 0.75
    if any(question.speaker & name_words(_own_part(r)) for r in speech.reported):
        return 0.75  # X's words as relayed by a source ("Ushakov said ..., Tass reported")
    return -1.0 if mentioned else 0.0


def _own_part(speaker: str) -> str:
    """Who speaks in a possessive phrase: "Novak's spokeswoman" is the spokeswoman, not Novak
    ("Russia's Tass news agency" stays Tass)."""
    _head, sep, tail = speaker.replace("’", "'").rpartition("'s ")
    if sep and tail and not any(_NAME_WORD.match(w) for w in tail.split()):
        return tail
    return speaker


def _attribution(sentence: str) -> str | None:
    """The speaker the sentence itself names, by the rules in the module docstring."""
    found, _ = _attributions(sentence)
    return found[0] if found else None


def _attributions(sentence: str) -> tuple[list[str], bool]:
    """Every speaker the sentence names, the trailing attribution (the source) first, then a
    leading one; and whether the source only relays the leading speaker's words.

    A news outlet that reports ("Ushakov said ..., Tass reported") relays; anybody else
    ("Moreno told Tanabe ..., the ministry has said") gives their own account of what the
    leading speaker said, which a reader does not take as that speaker's words.
    """
    s = sentence.strip()
    found: list[str] = []
    relay = False
    closing = max(s.rfind('"'), s.rfind(_CLOSE))
    after = s[closing + 1 :] if closing > 0 else ""
    for pattern in (_AFTER_QUOTE, _TRAILING_INVERTED, _TRAILING):
        m = pattern.search(s) if pattern is not _AFTER_QUOTE else pattern.match(after)
        if m and pattern is _AFTER_QUOTE and _speaker_like(m.group("spk")):
            found.append(m.group("spk").strip())
            relay = m.group("verb").startswith("report") or bool(_MEDIA.search(found[-1]))
            break
        # A trailing clause attributes what comes before it, not the sentence's own subject.
        if m and m.start() > 0 and _speaker_like(m.group("spk")):
            spk = m.group("spk").strip()
            verb = m.groupdict().get("verb") or ""
            relay = verb.startswith("report") or bool(_MEDIA.search(spk))
            found.append(spk)
            break
    for pattern in (_LEADING, _ACCORDING):
        m = pattern.match(s) if pattern is _LEADING else pattern.search(s)
        if m and _speaker_like(m.group("spk")):
            found.append(m.group("spk").strip())
            break
    return found, relay


_MEDIA = re.compile(
    r"\b(?:news|agency|newspaper|paper|broadcaster|television|TV|radio|outlet|wire|daily)\b",
    re.I,
)


def _speaker_like(phrase: str) -> bool:
    """A short noun phrase naming someone: "Mr Obama", "the Kremlin", "he", "officials".

    Lower-case words must be determiners or words for people and bodies, so that "Your
    support helps us to (tell)" or "follow other readers and see (their)" are not speakers.
    """
    words = phrase.split()
    if not words or len(words) > 8:
        return False
    if _PRONOUN.match(phrase.strip()):
        return True
    named = False
    for w in words:
        bare = w.strip("'’,").removesuffix("'s").removesuffix("’s")
        if _NAME_WORD.match(bare) or bare.isdigit():
            named = named or bool(_NAME_WORD.match(bare))
        elif bare.lower() not in _ROLE_WORDS and not w.rstrip(",").endswith(("'s", "’s")):
            return False  # a possessive ("the alliance's organiser") may be any noun
    return named or words[-1].lower().strip("'’") in _ROLE_WORDS - _DETERMINERS


_DETERMINERS = _words(
    "the a an his her their its our one two three four five several some many of for at from in and"
)
_ROLE_WORDS = _DETERMINERS | _words(
    "aide aides adviser advisers spokesman spokeswoman spokesperson official officials "
    "minister ministers ministry president secretary chief head leader leaders director "
    "government administration agency news newspaper paper police officer officers army "
    "military statement source sources analyst analysts expert experts economist economists "
    "witness witnesses resident residents lawyer lawyers prosecutor prosecutors judge court "
    "company firm council committee board spokespeople diplomat diplomats envoy ambassador "
    "senator mayor governor chairman chairwoman chair executive ceo founder owner members "
    "member report study survey union unions group organisers organizers campaigners "
    "doctors doctor scientists researchers teacher teachers parents authorities "
    "department office palace house service regulator regulators bank officials' "
    "senior former deputy foreign local state federal top organiser organizer campaign camp "
    "team party "
    "opposition coalition family relatives friends allies critics supporters rivals "
    "colleagues staff workers employees players fans customers users neighbours residents "
    "organisation organization charity hospital school university police"
)


def _paragraphs(text: str, spans: Sequence[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """Sentences grouped by paragraph: a line break between two sentences ends one."""
    paras: list[list[tuple[int, int]]] = []
    prev_end: int | None = None
    for s, e in spans:
        if prev_end is None or "\n" in text[prev_end:s]:
            paras.append([])
        paras[-1].append((s, e))
        prev_end = e
    return paras


def _starts_inside_quote(text: str, para: Sequence[tuple[int, int]]) -> list[bool]:
    """Whether each sentence begins inside a quotation opened earlier in the paragraph."""
    out: list[bool] = []
    depth = 0
    for s, e in para:
        out.append(depth > 0)
        for ch in text[s:e]:
            if ch == _OPEN:
                depth = 1
            elif ch == _CLOSE:
                depth = 0
            elif ch == '"':
                depth = 1 - depth
    return out


def _opens_quote(sentence: str) -> bool:
    s = sentence.lstrip()
    return bool(s) and s[0] in ('"', _OPEN)


def _is_all_quote(sentence: str) -> bool:
    """A sentence that is a quotation from end to end, with no attribution of its own."""
    s = sentence.strip()
    return bool(s) and (s[0] in ('"', _OPEN) or s[-1] in ('"', _CLOSE)) and _attribution(s) is None
