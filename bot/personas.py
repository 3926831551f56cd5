"""Personas for the patient simulator: the same case written the way different real patients write.

A persona is a pure, deterministic function from a case to a rewritten case (`PERSONAS[name](case)`),
seeded by the case id and never by global random state. It changes how the patient writes, never
what the patient reports: every symptom, negation ("no", "not", "没", "不"), number, temperature and
duration of the original stays, so the case's expectation still holds and a drop in the figures
is the bot's, not the persona's. The simulated patient goes on knowing what the original case
says (its button answers come from that); only what it types is rewritten: its messages, and its
free-text answers (`persona.typed`), such as its age or a temperature.

Every rewrite here is made by rules (`rewriter: "rules"`). A persona may one day paraphrase with a
capable model instead (`"model"`); the simulator records which one was used in each result line.
"""

from __future__ import annotations

import hashlib
import inspect
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import opencc

from bot.simulator import SimCase
from safety import detect_language, normalise
from safety.quantities import read_who

Lang = Literal["en", "zh"]
Rewriter = Literal["rules", "model"]
Slot = Literal["age", "number"]

_S2T = opencc.OpenCC("s2t")
_T2S = opencc.OpenCC("t2s")
_CJK = re.compile(r"[\u3400-\u9fff]")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_TOKEN = re.compile(r"(?P<num>\d+(?:\.\d+)?)|(?P<word>[A-Za-z]+(?:'[A-Za-z]+)*)")
_EN_BREAK = re.compile(r"[,.;:!?()\n]")


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


#: English negations: no rewrite changes or drops them.
EN_NEGATIONS = _word_set(
    "no not never nothing without none nor neither nobody denies deny denied negative cannot dont "
    "doesnt didnt isnt wasnt hasnt havent arent hadnt aint cant wont couldnt shouldnt wouldnt "
    "don't doesn't didn't isn't wasn't hasn't haven't aren't hadn't ain't can't won't couldn't "
    "shouldn't wouldn't"
)
#: Words of number, time and measure (and the negations): never misspelt, never dropped.
EN_KEEP = EN_NEGATIONS | _word_set(
    "one two three four five six seven eight nine ten eleven twelve twenty thirty few several "
    "couple half dozen once twice hundred first second third degrees degree celsius fahrenheit "
    "years year months month weeks week days day hours hour minutes minute seconds night nights "
    "morning evening afternoon tonight today yesterday overnight ago since last now just old born"
)
#: Chinese characters that carry negation: no rewrite touches them.
ZH_NEGATIONS = "没不无未别否非"
#: What makes a clause boundary unsafe to drop: a denial or a past marker could then reach the
#: finding in the next clause.
_SCOPE_CUES = re.compile(
    r"\b(?:no|not|never|nothing|without|none|nor|neither|dont|doesnt|didnt|isnt|wasnt|hasnt|havent"
    r"|cant|cannot|wont|ago|used|before|previous|previously|history|past|last|when|if|gone|stopped"
    r"|resolved|better|except|denies|denied)\b|n't|[没不无未别否非]|以前|之前|去年|年前|曾|过|史|好了|退了|停了",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Writing:
    """What a rewrite may know of the case it rewrites, and a generator seeded by its id."""

    case: SimCase
    lang: Lang
    about: Literal["self", "child", "other"]  # whom the case's own text is about
    index: int  # which message; -1 for a typed answer
    rng: random.Random
    slot: Slot | None = None  # what a typed answer answers: an age or another number

    @property
    def first(self) -> bool:
        return self.index == 0

    @property
    def last(self) -> bool:
        return self.index == len(self.case.messages) - 1

    def chance(self, probability: float) -> bool:
        return self.rng.random() < probability

    def pick(self, options: Sequence[str]) -> str:
        return options[self.rng.randrange(len(options))]


TextRewrite = Callable[[str, Writing], str]


def _seeded(*parts: str) -> random.Random:
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


_THIRD_PERSON = re.compile(
    r"\b(?:son|daughter|child|kid|baby|toddler|infant|newborn|boy|girl|he|she|his|her|him|hes|shes|he's"
    r"|she's|\d+\s*(?:months?|mos?|years?|yrs?|weeks?)[ -]*old|\d+\s*(?:yo|y/o))\b"
    r"|他|她|儿子|女儿|孩子|宝宝|小孩|娃|闺女|婴儿",
    re.IGNORECASE,
)


def _about(joined: str, case: SimCase) -> Literal["self", "child", "other"]:
    """Whom the case's own text is about: "son (3) fever" is a parent writing about a child even
    without "my"; "耳朵有点疼" from a 12-year-old is the child writing."""
    who = read_who(normalise(joined))
    if who is None and is_child(case):
        young = case.age is not None and case.age < 8  # too young to be typing this
        return "child" if young or _THIRD_PERSON.search(joined) else "self"
    return who or "self"


def _always(case: SimCase) -> bool:
    return True


def is_child(case: SimCase) -> bool:
    return case.age is not None and case.age < 16


def _adult(case: SimCase) -> bool:
    return not is_child(case)


def _has_cjk(case: SimCase) -> bool:
    return any(_CJK.search(message) for message in case.messages)


@dataclass(frozen=True)
class Persona:
    """One way of writing: `persona(case)` is the case as this patient would type it."""

    name: str
    text: TextRewrite
    answer: TextRewrite
    applies: Callable[[SimCase], bool] = _always
    rewriter: Rewriter = "rules"

    @property
    def description(self) -> str:
        """Which real patients this persona imitates (its rewrite's docstring)."""
        return inspect.getdoc(self.text) or ""

    def _writing(self, case: SimCase, index: int, slot: Slot | None = None, text: str = "") -> Writing:
        joined = " . ".join(case.messages)
        lang: Lang = case.lang or detect_language(joined) or "en"
        return Writing(
            case=case,
            lang=lang,
            about=_about(joined, case),
            index=index,
            rng=_seeded(self.name, case.id, str(index), slot or "", text),
            slot=slot,
        )

    def __call__(self, case: SimCase) -> SimCase:
        if not self.applies(case):
            return case
        messages = [self.text(text, self._writing(case, i)) for i, text in enumerate(case.messages)]
        if messages == case.messages:
            return case
        return case.model_copy(update={"messages": messages})

    def typed(self, text: str, case: SimCase, slot: Slot) -> str:
        """A free-text answer the simulated patient types (its age, a number) in this voice."""
        if not self.applies(case):
            return text
        return self.answer(text, self._writing(case, -1, slot, text))


# ---- shared pieces ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    start: int
    end: int
    text: str
    near_number: bool  # a number, or within two words of one ("38 degrees", "fever of 101")
    after_number: bool  # right after a number ("5 hours")
    after_break: bool  # the first word of a clause
    following: str  # the next word, lower case

    @property
    def lower(self) -> str:
        return self.text.lower()


def _tokens(text: str) -> list[_Token]:
    found = [(m.start(), m.end(), m.group(0), m.lastgroup == "num") for m in _TOKEN.finditer(text)]
    tokens = []
    for i, (start, end, word, _) in enumerate(found):
        before = text[found[i - 1][1] : start] if i else text[:start]
        near = any(other[3] for other in found[max(0, i - 2) : i + 3])
        after = i > 0 and found[i - 1][3]
        following = found[i + 1][2].lower() if i + 1 < len(found) else ""
        clause_start = i == 0 or bool(_EN_BREAK.search(before))
        tokens.append(_Token(start, end, word, near, after, clause_start, following))
    return tokens


def _rewrite_words(text: str, change: Callable[[_Token], str | None]) -> str:
    """Rewrite English words one by one: `change` gives the new word, "" to drop the word (and a
    space after it), or None to keep it. Numbers are never offered."""
    out: list[str] = []
    cursor = 0
    for token in _tokens(text):
        if token.text[0].isdigit():
            continue
        new = change(token)
        if new is None:
            continue
        out.append(text[cursor : token.start])
        cursor = token.end
        if new == "":
            cursor += 1 if text[cursor : cursor + 1] == " " else 0
        else:
            out.append(_same_case(token.text, new))
    out.append(text[cursor:])
    return "".join(out)


def _same_case(original: str, new: str) -> str:
    if original.isupper() and len(original) > 1:
        return new.upper()
    if original[:1].isupper():
        return new[:1].upper() + new[1:]
    return new


def _substitute(
    text: str, table: dict[str, str], w: Writing, probability: float, at_least_one: bool = False
) -> str:
    """Replace the table's words (longest first) where the seeded coin says so (and one of them
    at least, if asked). English keys match whole words; a space keeps a Latin replacement from
    running into a Latin word or digit next to it ("鼻塞流鼻涕" -> "blocked nose runny nose")."""
    keys = sorted(table, key=len, reverse=True)
    pattern = re.compile(
        "|".join(rf"(?<![A-Za-z]){re.escape(k)}(?![A-Za-z])" if k.isascii() else re.escape(k) for k in keys),
        re.IGNORECASE,
    )
    matches = list(pattern.finditer(text))
    chosen = {w.rng.randrange(len(matches))} if matches and at_least_one else set()
    chosen |= {i for i in range(len(matches)) if w.chance(probability)}
    out: list[str] = []
    cursor = 0
    for i, match in enumerate(matches):
        if i not in chosen:
            continue
        new = _same_case(match.group(0), table[match.group(0).lower()])
        out.append(text[cursor : match.start()])
        if _latin_edge("".join(out)[-1:]) and _latin_edge(new[:1]):
            out.append(" ")
        out.append(new)
        cursor = match.end()
        if _latin_edge(new[-1:]) and _latin_edge(text[cursor : cursor + 1]):
            out.append(" ")
    out.append(text[cursor:])
    return "".join(out)


def _latin_edge(char: str) -> bool:
    return bool(char) and char.isascii() and char.isalnum()


def _frame(text: str, w: Writing, before: str = "", after: str = "") -> str:
    """Sentences around a message, with the punctuation its language uses."""
    body = text.strip()
    if after and body and body[-1] not in '.!?。！？…"”':
        body += "。" if w.lang == "zh" else "."
    return ("" if w.lang == "zh" else " ").join(part for part in (before, body, after) if part)


def _lower_first(text: str) -> str:
    return text if re.match(r"I\b", text) else text[:1].lower() + text[1:]


def _identity(text: str, w: Writing) -> str:
    return text


# ---- terse --------------------------------------------------------------------------------------

#: Words a terse patient leaves out at the start of a clause ("I have a cough" -> "cough").
TERSE_CLAUSE_START = _word_set(
    "i i'm im i've ive have has got the a an my there there's theres is so well hi hello hey basically um"
)
#: Words a terse patient leaves out anywhere.
TERSE_ANYWHERE = _word_set("please hi hello hey um uh basically actually")
#: Short forms; a unit only right after its number ("5 hrs", never "last wk").
TERSE_SHORT = {"because": "bc", "temperature": "temp", "with": "w"}
TERSE_UNITS = {"hours": "hrs", "hour": "hr", "minutes": "mins", "minute": "min"}
#: "a" that is a number or a measure: "a few days", "a bit", "a lot of blood".
_TERSE_KEEP_AFTER_A = _word_set(
    "bit lot little few couple day week month year hour minute night while temp fit"
)
_THANKS = re.compile(
    r"\b(?:thank you|thanks)(?: (?:so much|very much|a lot))?(?: (?:doctor|dr))?\b[.!]?", re.IGNORECASE
)
_TERSE_DROP_ZH = re.compile(
    r"医生(?:你|您)好[，,！!。]?|(?:你|您)好(?:医生)?[，,！!。]?|请问[，,]?|麻烦(?:您|你)?帮我看看[，,。]?"
    r"|谢谢(?:医生|您|你)?[！!。]?|想?咨询一下[，,。]?|然后"
    r"|(?<=[\u4e00-\u9fff])[啊呀吧呢哦啦嘛](?=[，,。！!？?]|$)"
)


def terse(text: str, w: Writing) -> str:
    """Patients who type as little as they can on a phone: no greeting or thanks, no "I have a"
    at the start of a clause ("son fever 3 days, no rash"), short forms ("hrs", "temp", "bc"),
    lower case, no full stop; in Chinese, no greeting and no sentence-final particles. Drops only
    filler: never a negation, a number or a word of time or measure."""
    if _CJK.search(text) and w.lang == "zh":
        return _TERSE_DROP_ZH.sub("", text).rstrip("。.！!") or text
    text = _THANKS.sub("", text)
    out: list[str] = []
    cursor = 0
    clause_start = True
    for token in _tokens(text):
        lower = token.lower
        clause_start = clause_start or token.after_break
        drop = (
            not token.near_number
            and lower not in EN_KEEP
            and (lower in TERSE_ANYWHERE or (clause_start and lower in TERSE_CLAUSE_START))
            and not (lower in ("a", "an") and token.following in _TERSE_KEEP_AFTER_A)
        )
        if drop:
            out.append(text[cursor : token.start])
            cursor = token.end + (1 if text[token.end : token.end + 1] == " " else 0)
            continue
        clause_start = False
        short = TERSE_UNITS.get(lower) if token.after_number else TERSE_SHORT.get(lower)
        if short and not (lower == "with" and token.following in ("a", "an", "the")):
            out.append(text[cursor : token.start] + short + ("/" if lower == "with" else ""))
            cursor = token.end
    out.append(text[cursor:])
    terse_text = re.sub(r"\s{2,}", " ", "".join(out)).strip()
    terse_text = re.sub(r"^[,.;:!]+\s*", "", terse_text).replace("w/ ", "w/")
    terse_text = re.sub(r"\s+([,.;:!?])", r"\1", terse_text).rstrip(".! ")
    return _lower_first(terse_text) if terse_text else text


def _terse_answer(text: str, w: Writing) -> str:
    text = re.sub(r"^(\d+(?:\.\d+)?) hours$", r"\1h", text)
    text = re.sub(r"^(\d+(?:\.\d+)?) days$", r"\1", text)
    text = re.sub(r"^(\d+(?:\.\d+)?) months$", r"\1 mo", text)
    return {"not sure": "dunno", "don't know": "idk"}.get(text, text)


# ---- verbose ------------------------------------------------------------------------------------

VERBOSE_OPENINGS = {
    "en": (
        "Hi there, sorry to bother you.",
        "Hello, I hope you can help me with something.",
        "Good evening. I wanted to ask for some advice.",
        "Hi, I'm writing because I'd like some advice please.",
    ),
    "zh": ("医生您好，想咨询一下。", "你好医生，打扰了，想问个问题。", "您好，我想请教一下。"),
}
VERBOSE_LEADS = {"en": ("So, ", "Basically, ", "Well, "), "zh": ("是这样的，", "情况是这样的，")}
VERBOSE_MORE = {
    "en": ("Oh, and one more thing: ", "Also, I forgot to mention: ", "I should also say, "),
    "zh": ("对了，还有，", "另外，我忘了说，", "还有一点，"),
}
VERBOSE_CLOSINGS = {
    "en": (
        "Sorry for the long message. Thank you so much for your help!",
        "Thanks in advance, I really appreciate it.",
        "I hope that makes sense. Thank you.",
    ),
    "zh": ("麻烦您帮我看看，谢谢！", "辛苦了，谢谢医生。", "说了这么多，辛苦您了，谢谢。"),
}
_VERBOSE_SPELL_OUT = {
    "temp": "temperature",
    "hrs": "hours",
    "hr": "hour",
    "mins": "minutes",
    "wks": "weeks",
    "yr": "year",
    "yrs": "years",
    "im": "I'm",
    "ive": "I've",
    "dont": "don't",
    "cant": "can't",
    "doesnt": "doesn't",
    "isnt": "isn't",
    "wont": "won't",
    "hes": "he's",
    "shes": "she's",
    "theres": "there's",
    "u": "you",
    "ok": "okay",
}


def verbose(text: str, w: Writing) -> str:
    """Patients who write a letter: a greeting, a lead-in ("So, ..."), every word spelt out
    ("temperature", "I'm", "don't"), "one more thing" before a later message, an apology for the
    length and thanks. Adds only sentences that report nothing, and never moves a word."""
    lang = w.lang
    if lang == "en":
        text = _rewrite_words(text, lambda token: _VERBOSE_SPELL_OUT.get(token.lower))
    if w.first:
        lead = w.pick(VERBOSE_LEADS[lang])
        body = lead + (_lower_first(text) if lang == "en" else text)
        text = _frame(body, w, before=w.pick(VERBOSE_OPENINGS[lang]))
    else:
        more = w.pick(VERBOSE_MORE[lang])
        text = more + (_lower_first(text) if lang == "en" else text)
    if w.last:
        text = _frame(text, w, after=w.pick(VERBOSE_CLOSINGS[lang]))
    return text


def _verbose_answer(text: str, w: Writing) -> str:
    if not _NUMBER.search(text):
        return text
    if w.slot == "age":
        if w.lang == "zh":
            return f"{text}岁。" if _NUMBER.fullmatch(text) else f"{text}。"
        if not _NUMBER.fullmatch(text):
            return f"{text} old."
        return f"I'm {text} years old." if w.about == "self" else f"{text} years old."
    if w.lang == "zh":
        return w.pick(("嗯，{}。", "我想想，应该是{}。", "{}，差不多就是这样。")).format(text)
    return w.pick(("Let me think... {}.", "It's {}, as far as I can tell.", "{}, I believe.")).format(text)


# ---- misspelt -----------------------------------------------------------------------------------

#: Misspellings real patients type: spelling by ear, dropped and doubled letters.
MISSPELLINGS_EN = {
    "temperature": ("temprature", "temperture", "tempreture"),
    "stomach": ("stomache", "stomac", "stomch"),
    "diarrhoea": ("diarrea", "diarhoea", "diarroea"),
    "diarrhea": ("diarrea", "diarhea", "diarreah"),
    "breathing": ("breathin", "breathng", "brething"),
    "breathe": ("breath", "breth"),
    "headache": ("headach", "hedache", "headake"),
    "vomiting": ("vomitting", "vomitin", "vomting"),
    "vomited": ("vomitted",),
    "nauseous": ("nausious", "nauseus"),
    "nausea": ("nausia", "nasea"),
    "dizzy": ("dizy", "dizzey"),
    "throat": ("throt", "throte"),
    "swollen": ("swolen", "swollon"),
    "swelling": ("sweling", "swellin"),
    "chest": ("chset", "chets"),
    "fever": ("fevr", "feaver", "fevor"),
    "cough": ("cogh", "couhg"),
    "coughing": ("coughin", "caughing", "cougin"),
    "unconscious": ("unconcious", "unconscous"),
    "seizure": ("siezure", "seizur"),
    "allergic": ("alergic", "allergik"),
    "really": ("realy", "relly"),
    "tired": ("tierd", "tird"),
    "because": ("becuase", "becasue"),
    "bleeding": ("bleding", "bleedin"),
    "appetite": ("apetite", "appetit"),
    "medicine": ("medecine", "medicin"),
    "paracetamol": ("paracetemol", "paracetomol"),
    "ibuprofen": ("ibuprofin", "ibuprofene"),
    "pregnant": ("pregant", "pregnent"),
    "constipated": ("constipaited", "consipated"),
    "rash": ("rashe",),
    "pain": ("pian", "pane"),
    "painful": ("painfull", "panful"),
    "hurts": ("hurst", "hurtz"),
    "sleepy": ("sleepey", "slepy"),
    "itchy": ("itchey", "ichy"),
    "infection": ("infecton", "infektion"),
    "sweating": ("sweatin", "swetting"),
    "weird": ("wierd",),
    "definitely": ("definately", "definatly"),
    "ankle": ("ancle",),
    "shoulder": ("sholder", "shoulda"),
    "stiff": ("stif",),
    "blood": ("blod", "bloood"),
    "eczema": ("exzema", "ekzema"),
    "asthma": ("asma", "athsma"),
    "antibiotics": ("antibiotcs", "anitbiotics"),
}
#: Slips of Chinese pinyin input: a homophone or near-homophone taken from the candidate list.
MISSPELLINGS_ZH = {
    "腹泻": "腹泄",
    "咳嗽": "咳漱",
    "眩晕": "旋晕",
    "瘙痒": "搔痒",
    "抽搐": "抽畜",
    "已经": "以经",
    "厉害": "利害",
    "症状": "证状",
    "稍微": "稍为",
    "一直": "一值",
    "感觉": "敢觉",
    "喉咙": "喉龙",
    "嗓子": "桑子",
    "肚子": "肚紫",
    "呕吐": "呕土",
    "头晕": "头云",
    "难受": "难瘦",
    "好像": "好象",
    "的时候": "得时候",
    "疼得": "疼的",
    "痛得": "痛的",
}
_VOWELS = "aeiou"


def misspell_word(word: str, rng: random.Random) -> str:
    """One realistic slip, in lower case: a known misspelling of the word, else "-ing" losing its
    g, a doubled letter written once, an unsounded e before r, l or n dropped ("temprature",
    "diffrent", "hopless") or "ie" and "ei" swapped ("recieve"). The first and last letters stay."""
    lower = word.lower()
    if lower in MISSPELLINGS_EN:
        options = MISSPELLINGS_EN[lower]
        return options[rng.randrange(len(options))]
    slips: list[str] = []
    if lower.endswith("ing") and len(lower) > 5:
        slips.append(lower[:-1])
    slips += [lower[:i] + lower[i + 1 :] for i in range(1, len(lower) - 1) if lower[i] == lower[i + 1]]
    slips += [
        lower[:i] + lower[i + 1 :]
        for i in range(3, len(lower) - 2)
        if lower[i] == "e"
        and lower[i - 1] not in _VOWELS
        and lower[i + 1] in "rln"
        and lower[i - 1] != lower[i + 1]
    ]
    slips += [
        lower[:i] + lower[i + 1] + lower[i] + lower[i + 2 :]
        for i in range(1, len(lower) - 2)
        if lower[i : i + 2] in ("ie", "ei")
    ]
    return slips[rng.randrange(len(slips))] if slips else lower


def misspelt(text: str, w: Writing) -> str:
    """Patients who spell by ear or type fast on a small screen: "temprature", "stomache",
    "breathin", "diarrea"; in Chinese, the homophone the pinyin keyboard offered (腹泄, 咳漱).
    Never touches a negation (no, not, 没, 不), a number or the words beside it, or a word of
    time or measure; each slip leaves a word a reader still recognises."""
    if _CJK.search(text):
        text = _substitute(text, MISSPELLINGS_ZH, w, 0.7)

    def change(token: _Token) -> str | None:
        lower = token.lower
        if token.near_number or "'" in lower or lower in EN_KEEP:
            return None
        if lower in MISSPELLINGS_EN:
            return misspell_word(lower, w.rng) if w.chance(0.85) else None
        if len(lower) >= 5 and w.chance(0.3):
            return misspell_word(lower, w.rng)
        return None

    return _rewrite_words(text, change)


# ---- traditional --------------------------------------------------------------------------------


def to_traditional(text: str) -> str:
    """Simplified to Traditional characters, kept only where the Traditional maps back to the
    same Simplified (so what the bot reads is the case's own words)."""
    converted = str(_S2T.convert(text))
    if _T2S.convert(converted) == text:
        return converted
    if len(converted) != len(text):
        return text
    pairs = zip(text, converted, strict=True)
    fixed = "".join(new if _T2S.convert(new) == old else old for old, new in pairs)
    return fixed if _T2S.convert(fixed) == text else text


def traditional(text: str, w: Writing) -> str:
    """Patients in Hong Kong, Macau, Taiwan and overseas communities who write Traditional
    characters (發燒, 頭痛, 沒有): the same words, only the script changes. Cases without Chinese
    stay as they are."""
    return to_traditional(text) if _CJK.search(text) else text


# ---- mixed --------------------------------------------------------------------------------------

#: (Chinese, English): the symptom words bilingual patients switch. Where a word appears twice,
#: the first pair is the one used from English to Chinese. None carries a negation.
MIXED_TERMS: tuple[tuple[str, str], ...] = (
    ("发烧", "fever"),
    ("发热", "fever"),
    ("高烧", "high fever"),
    ("低烧", "low grade fever"),
    ("咳嗽", "cough"),
    ("头痛", "headache"),
    ("头疼", "headache"),
    ("腹泻", "diarrhoea"),
    ("拉肚子", "diarrhoea"),
    ("拉稀", "diarrhea"),
    ("呕吐", "vomiting"),
    ("皮疹", "rash"),
    ("疹子", "rash"),
    ("胸痛", "chest pain"),
    ("喉咙痛", "sore throat"),
    ("嗓子疼", "sore throat"),
    ("嗓子痛", "sore throat"),
    ("喉咙疼", "sore throat"),
    ("咽痛", "sore throat"),
    ("流鼻涕", "runny nose"),
    ("鼻塞", "blocked nose"),
    ("打喷嚏", "sneezing"),
    ("肚子疼", "stomach ache"),
    ("肚子痛", "tummy ache"),
    ("腹痛", "abdominal pain"),
    ("胃疼", "stomach ache"),
    ("胃痛", "stomach pain"),
    ("头晕", "dizzy"),
    ("头昏", "dizzy"),
    ("气短", "short of breath"),
    ("喘不过气", "short of breath"),
    ("呼吸困难", "difficulty breathing"),
    ("抽搐", "seizure"),
    ("耳朵疼", "earache"),
    ("耳朵痛", "ear pain"),
    ("背痛", "back pain"),
    ("出汗", "sweating"),
    ("胸闷", "chest tightness"),
    ("心慌", "palpitations"),
    ("心悸", "palpitations"),
    ("心跳快", "heart racing"),
    ("便秘", "constipation"),
    ("晕倒", "fainted"),
    ("湿疹", "eczema"),
    ("流血", "bleeding"),
    ("出血", "bleeding"),
    ("恶心", "nausea"),
    ("脖子硬", "stiff neck"),
    ("尿痛", "pain when peeing"),
    ("尿频", "peeing a lot"),
    ("瘙痒", "itchy skin"),
    ("焦虑", "anxious"),
    ("中暑", "heatstroke"),
    ("扭伤", "sprain"),
    ("骨折", "fracture"),
    ("流鼻血", "nosebleed"),
    ("水痘", "chickenpox"),
    ("口腔溃疡", "mouth ulcers"),
    ("关节痛", "joint pain"),
    ("发冷", "chills"),
    ("昏迷", "unconscious"),
    ("腿肿", "swollen legs"),
    ("尿血", "blood in urine"),
    ("便血", "blood in stool"),
    ("眼睛痛", "eye pain"),
    ("哮喘", "asthma"),
    ("过敏", "allergic reaction"),
    ("烧伤", "burn"),
    ("呕吐", "throwing up"),
    ("拉肚子", "diarrhea"),
)
_ZH_TO_EN: dict[str, str] = {}
_EN_TO_ZH: dict[str, str] = {}
for _zh, _en in MIXED_TERMS:
    _ZH_TO_EN.setdefault(_zh, _en)
    _EN_TO_ZH.setdefault(_en, _zh)
del _zh, _en


def mixed(text: str, w: Writing) -> str:
    """Bilingual patients (Hong Kong, Singapore, students and families abroad) who write one
    language with the other's words for symptoms: "发烧38度5, 全身酸痛, 有点cough", "my son has
    拉肚子 since yesterday". About half the symptom words switch; grammar, negations and numbers
    stay those of the original."""
    if w.lang == "zh" and _CJK.search(text):
        return _substitute(text, _ZH_TO_EN, w, 0.5, at_least_one=True)
    return _substitute(text, _EN_TO_ZH, w, 0.5, at_least_one=True)


# ---- parent -------------------------------------------------------------------------------------

PARENT_OPENINGS = {
    "en": ("Hi, I'm writing about my {child}.", "Hello, I need some advice about my {child}."),
    "zh": ("医生你好，想问问我家{child}的情况，我是{pronoun}{parent}。", "你好，想问一下我家{child}的情况。"),
}
PARENT_CLOSINGS = {
    "en": ("What should we do?", "Should we take {him} to see someone?", "Any advice would help."),
    "zh": ("我们该怎么办？", "需要带{him}去医院吗？", "麻烦您给点建议。"),
}


def _child_words(case: SimCase, lang: Lang, rng: random.Random) -> dict[str, str]:
    infant = case.age is not None and case.age < 1
    sex = case.sex or ""
    if lang == "zh":
        pronoun = {"M": "他", "F": "她"}.get(sex, "")
        return {
            "child": "宝宝" if infant else {"M": "儿子", "F": "女儿"}.get(sex, "孩子"),
            "pronoun": pronoun,
            "parent": ("妈妈", "爸爸")[rng.randrange(2)] if pronoun else "家长",
            "him": pronoun or "孩子",
        }
    return {
        "child": "baby" if infant else {"M": "son", "F": "daughter"}.get(sex, "child"),
        "him": {"M": "him", "F": "her"}.get(sex, "them"),
        "he": {"M": "he", "F": "she"}.get(sex, "they"),
    }


def parent(text: str, w: Writing) -> str:
    """Parents writing about a child: an opening that names the child ("my son", "我家宝宝"), the
    child's own words passed on in quotes when the case is written by the child ("孩子说：“耳朵
    疼”"), and a worried question at the end. Only for cases about a child (under 16); anyone
    else's case stays as it is."""
    words = _child_words(w.case, w.lang, w.rng)
    if w.about == "self":  # the child's own words, reported by the parent
        if w.lang == "zh":
            speaker = f"我家{words['child']}说" if w.first else f"{words['him']}还说"
            text = f"{speaker}：“{text}”"
        else:
            speaker = f"My {words['child']} says" if w.first else f"{words['he'].capitalize()} also says"
            text = f'{speaker}: "{text}"'
    if w.first:
        text = _frame(text, w, before=w.pick(PARENT_OPENINGS[w.lang]).format(**words))
    if w.last:
        text = _frame(text, w, after=w.pick(PARENT_CLOSINGS[w.lang]).format(**words))
    return text


def _parent_answer(text: str, w: Writing) -> str:
    if w.slot != "age":
        return text
    if w.lang == "zh":
        return f"{text}岁" if _NUMBER.fullmatch(text) else text
    if _NUMBER.fullmatch(text) or re.fullmatch(r"\d+(?:\.\d+)? months", text):
        return f"{ {'M': 'he is', 'F': 'she is'}.get(w.case.sex or '', 'they are') } {text}"
    if text == "not sure":
        return "not sure, I'd have to check"
    return text


# ---- elderly ------------------------------------------------------------------------------------

#: What older patients say of their age; only where the case's patient is 60 or older.
ELDERLY_CONTEXT = {
    "en": (
        "I'm getting on a bit these days.",
        "At my age you like to check these things.",
        "These phones are a puzzle to me at my age.",
    ),
    "zh": ("我年纪大了，打字慢，请多包涵。", "老了，用手机打字慢。", "人上了年纪，总想问问清楚。"),
}
#: What they say of the phone, whatever the case's age.
ELDERLY_PHONE = {
    "en": (
        "Sorry, I'm slow with these phones.",
        "Forgive my typing, the buttons on this phone are very small.",
    ),
    "zh": ("手机打字慢，请多包涵。", "字打得慢，您多担待。"),
}
ELDERLY_AGE = {
    "en": ("I am {age} years old.", "I'm {age} now."),
    "zh": ("我今年{age}岁了。", "我{age}岁了。"),
}
ELDERLY_CLOSINGS = {
    "en": ("Thank you dear.", "Thank you for your time, doctor.", "God bless."),
    "zh": ("谢谢医生了。", "麻烦你了，好人一生平安。", "谢谢你们。"),
}
ELDERLY_HEDGES = {"en": ("I think ", "it seems ", "as far as I can tell "), "zh": ("我觉得", "好像", "估计")}
_CLAUSE_EN = re.compile(r"((?<!\d)[,.;!?](?!\d)\s*)")
_CLAUSE_ZH = re.compile(r"([，。；！？,;!?]\s*)")


def elderly(text: str, w: Writing) -> str:
    """Older patients: an opening about their age ("I'm 78 now", "我年纪大了，打字慢"; for a case
    under 60, only their trouble with the phone), hedged and less precise wording ("I think",
    "好像"), thanks at the end, and often trailing dots or no punctuation at all. A clause break
    is dropped only where neither side has a negation or a past marker, so no denial or history
    reaches another finding. Adults only; a child's case stays as it is."""
    lang = w.lang
    text = _hedge(text, w)
    style = w.pick(("plain", "dots", "none"))
    if style == "none":
        text = _unpunctuate(text, lang)
    elif style == "dots":
        text = _CLAUSE_EN.sub(lambda m: "... " if m.group(1).strip() in ",." else m.group(1), text)
        # a space between the dots and a number: "……38度5" would no longer read as 38.5
        text = re.sub(
            r"[，。](\d?)", lambda m: "……" + (" " + m.group(1) if m.group(1) else ""), text
        ).rstrip()
    if w.first:
        old = w.case.age is None or w.case.age >= 60
        opening = w.pick(ELDERLY_CONTEXT[lang] if old else ELDERLY_PHONE[lang])
        if w.about == "self" and w.case.age is not None and w.case.age >= 60:
            stated = w.pick(ELDERLY_AGE[lang]).format(age=f"{w.case.age:g}")
            opening = stated + ("" if lang == "zh" else " ") + opening
        text = _frame(text, w, before=opening)
    if w.last:
        text = _frame(text, w, after=w.pick(ELDERLY_CLOSINGS[lang]))
    return text


def _hedge(text: str, w: Writing) -> str:
    """A hedge in front of one clause that starts with a word."""
    zh = w.lang == "zh" and bool(_CJK.search(text))
    parts = (_CLAUSE_ZH if zh else _CLAUSE_EN).split(text)
    starts = [
        i for i in range(0, len(parts), 2) if (_CJK.match(parts[i][:1]) if zh else parts[i][:1].isalpha())
    ]
    if not starts:
        return text
    i = starts[w.rng.randrange(len(starts))]
    hedge = w.pick(ELDERLY_HEDGES["zh" if zh else "en"])
    parts[i] = hedge + (parts[i] if zh else _lower_first(parts[i]))
    if i == 0 and not zh:
        parts[0] = parts[0][:1].upper() + parts[0][1:]
    return "".join(parts)


def _unpunctuate(text: str, lang: Lang) -> str:
    """Drop the marks between clauses where that is safe: neither neighbouring clause carries a
    negation or a past marker, and the mark is no question mark."""
    zh = lang == "zh" and bool(_CJK.search(text))
    parts = (_CLAUSE_ZH if zh else _CLAUSE_EN).split(text)
    out = [parts[0]]
    for i in range(1, len(parts), 2):
        before, mark, after = parts[i - 1], parts[i], parts[i + 1]
        final = not after.strip()
        scoped = _SCOPE_CUES.search(before) or _SCOPE_CUES.search(after)
        if "?" in mark or "？" in mark or (scoped and not final):
            out.append(mark)
        elif final:
            out.append("")
        else:
            out.append(" ")
        out.append(after)
    return re.sub(r" {2,}", " ", "".join(out)).strip()


def _elderly_answer(text: str, w: Writing) -> str:
    if not _NUMBER.search(text):
        return text
    if w.slot == "age":
        if w.about != "self" or not _NUMBER.fullmatch(text):
            return text
        return f"我今年{text}岁了" if w.lang == "zh" else f"I'm {text} this year"
    return f"大概{text}吧" if w.lang == "zh" else f"about {text} I think"


# ---- the registry -------------------------------------------------------------------------------

PERSONAS: dict[str, Persona] = {
    persona.name: persona
    for persona in (
        Persona("terse", terse, _terse_answer),
        Persona("verbose", verbose, _verbose_answer),
        Persona("misspelt", misspelt, misspelt),
        Persona("traditional", traditional, traditional, applies=_has_cjk),
        Persona("mixed", mixed, _identity),
        Persona("parent", parent, _parent_answer, applies=is_child),
        Persona("elderly", elderly, _elderly_answer, applies=_adult),
    )
}


def select(spec: str) -> list[Persona]:
    """The personas `spec` names: "all", or names separated by commas."""
    names = list(PERSONAS) if spec.strip() == "all" else [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [name for name in names if name not in PERSONAS]
    if unknown or not names:
        named = ", ".join(unknown) or repr(spec)
        raise ValueError(f"unknown persona(s) {named}; known: all, {', '.join(PERSONAS)}")
    return [PERSONAS[name] for name in dict.fromkeys(names)]
