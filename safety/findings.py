"""Findings: the concepts a message mentions, each present, denied or only history.

Negation reaches back a few words (or characters) within one clause, further across "or" ("no blood
in sick or black poo", 没有吐血或者黑便); history needs an explicit
past marker ("ten years ago", "以前", "family history") in the clause and no present marker
("now", "again", "现在", "又"). When in doubt a finding stays present: a missed negation costs a
question, a wrong one can cost a life.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from safety.lexicon import DENIAL_MARK, Lexicon, Match, overlaps
from safety.quantities import read_days_since_last_period
from safety.text import Clauses

# A period that has not come by the end of the longest normal cycle is late. FIGO AUB System 1
# (Munro MG et al., Int J Gynaecol Obstet 2018;143:393-408): a normal cycle lasts 24 to 38 days.
LONGEST_NORMAL_CYCLE_DAYS = 38.0
LATE_PERIOD = "missed_period"  # the concept a late period is read as ("last period 7 weeks ago")


class Status(StrEnum):
    PRESENT = "present"
    NEGATED = "negated"
    HISTORICAL = "historical"
    HYPOTHETICAL = "hypothetical"  # a general question: "can stress cause chest tightness?"


@dataclass(frozen=True, slots=True)
class Finding:
    concept: str
    status: Status
    start: int
    end: int


_EN_NEGATION = re.compile(
    r"\b(?:no|not|never|nothing|without|denies|deny|denied|denying|none|nor|neither|free of|negative for"
    r"|nowhere|no longer|no more|don'?t|doesn'?t|didn'?t|isn'?t|wasn'?t|hasn'?t|haven'?t|aren'?t"
    r"|hadn'?t|ain'?t)\b"
)
_EN_PSEUDO_NEGATION = re.compile(
    r"\b(?:not sure|not certain|no idea|not only|not just|don'?t know|dont know|no doubt|no one|nobody"
    r"|no matter|not stop\w*|don'?t stop|doesn'?t stop|not able|didn'?t stop"
    r"|no (?:better|improvement)|not (?:getting )?better|not improving)\b"
)
_EN_NEGATION_WINDOW_WORDS = 4
_EN_COORDINATED = re.compile(r"\b(?:or|nor)\s*$")  # the finding is the next item of a denied list
_EN_COORDINATED_WINDOW_WORDS = 8
_EN_DENIAL = re.compile(r"\b(?:denies|denied|denying|negative for)\b")  # clinical lists: a longer reach
# "not having any thoughts of harming myself": a negation governing "thoughts of" (and the like)
# reaches the thought's object; only right before it, so "not sleeping and having thoughts of" stays
_EN_DENIED_THOUGHT = re.compile(
    r"\b(?:no|not|never|without|don'?t|doesn'?t|haven'?t|hasn'?t|aren'?t|isn'?t|nor)\s+"
    r"(?:(?:having|have|had|got|get|getting|been having|feeling|felt)\s+)?(?:any\s+)?"
    r"(?:thoughts?|ideas?|urges?|plans?|intentions?|wish(?:es)?)\s+(?:of|about|to)\s*$"
)
_EN_DENIAL_WINDOW_WORDS = 8
_GENERAL_QUESTION_EN = re.compile(
    r"^\W*(?:can|could|does|do|is it|are|what|how|why|when|which|should)\b.*\?\s*$"
)
_PERSONAL_EN = re.compile(r"\b(?:my|i|i'm|im|i've|ive|me|mine|he|she|his|her|him|we|our|us|they|their)\b")
_GENERAL_QUESTION_ZH = re.compile(
    r"(?:会不会|能不能|可不可以|是什么|什么是|有哪些|怎么判断|如何判断|是否会).*(?:吗|呢|\?)?$"
)
_PERSONAL_ZH = re.compile(r"我|他|她|孩子|宝宝|儿子|女儿|老公|老婆|爸|妈|现在|刚才")
_EN_AFTER = re.compile(
    r"^\W*(?:(?:is|are|has|have|'s|has now|is now)\s+)?(?:all\s+)?"
    r"(?:gone|resolved|went away|stopp?ed|settled|cleared up|all better)\b"
    r"|^\W*(?:home\s+)?tests?\b[^.;,!?]{0,30}?\bnegative\b"  # "pregnancy tests that were all negative"
)

_ZH_NEGATION = re.compile(r"没有|没|无|不|未|否认|并无|从未|从没|别")
_ZH_PSEUDO_NEGATION = re.compile(
    r"没事|没关系|不知道|不确定|不清楚|不太|不怎么|不舒服|不停|不行|不了|不得了|不住|不止|无法|不能|"
    r"不会|没法|没办法|不出|不上|不来|不动|不醒|不过来|不过气|是不是|会不会|要不要|有没有|不对劲|不得|"
    r"不想|不见|不清|不正常|没力|没劲|没精神|无力|不退|没退|没好|不好|没反应|无反应|不省人事|不肯|吃不下|"
    r"睡不着|止不住|不一样|不少|不小心|受不了|忍不住"
    r"|特别|分别|区别|差别|别人|别的|性别|告别|类别|个别|识别|鉴别"  # 别 inside a word is no "don't"
)
_ZH_NEGATION_WINDOW_CHARS = 4
# 或者拉黑便: a verb may follow; not 还是 ("still": 没怎么好还是喘不上气) nor 或许 ("perhaps")
_ZH_COORDINATED = re.compile(r"(?:或者|或是|或(?!许))\s*[^\s，,。]{0,2}$")
_ZH_COORDINATED_WINDOW_CHARS = 10
_ZH_AFTER = re.compile(
    r"^(?:已经|都|全|基本|基本上|差不多)?(?:退了|好了|消了|没了|止住了|停了|缓解了|好多了|不疼了|不痛了)"
    r"|^(?:检测|测试|试纸|检查)[^，,。；！？]{0,6}阴性"  # 新冠检测是阴性
)

_HISTORY = re.compile(
    r"\b(?:\d+|a|one|two|three|four|five|six|seven|eight|nine|ten|many|several|few|couple of)"
    r"\s+(?:years?|yrs?|months?|decades?)\s+(?:ago|back)\b"
    r"|\blast year\b|\bin (?:19|20)\d\d\b|\bhistory of\b|\bhx of\b|\bused to\b"
    r"|\bas a (?:kid|child|baby|teenager|teen)\b"
    r"|\bwhen (?:i|he|she|they|we) (?:was|were) (?:a |little|young|\d)"
    r"|\bat (?:the )?age (?:of )?\d+"
    r"|\bin the past\b(?!\s+(?:few\s+|couple of\s+|\d+\s+|two\s+|three\s+)?(?:days?|weeks?|month|hours?)\b)"
    r"|\bpreviously\b|\bprevious\b|\bpassed away\b|\bdied (?:of|from)\b"
    r"|\bruns in (?:the|my|our) family\b|\bfamily history\b|\bchildhood\b"
    r"|\b(?:years|months|decades) ago\b|\blast (?:month|year)\b"
    r"|以前|去年|前年|年前|多年|曾经|病史|家族史|小时候|(?<![晕昏抽死睡倒背憋疼痛厥])过去|既往|早年|那年|去世|过世"
    r"|年轻时|[\d一二两三四五六七八九十]+岁(?:的)?时"
)
_EXPERIENCED = re.compile(r"过(?![来去敏度量了])")  # 中风过, 惊厥过: the aspect of past experience
_NEVER_BEFORE = re.compile(r"从来没|从没|没这么|第一次|\bnever\b")  # 从来没这么痛过: a superlative, now
_PRESENT = re.compile(
    r"\b(?:now|right now|just now|today|tonight|currently|again|this (?:morning|evening|afternoon)"
    r"|at the moment|suddenly|happening|is having|keeps?)\b"
    r"|现在|刚才|刚刚|今天|正在|又|突然|目前|此刻|这会儿|今早|今晚|还在|一直"
)


def extract_findings(text: str, lexicon: Lexicon, clauses: Clauses | None = None) -> list[Finding]:
    """Every concept mention in `text` (normalised) with its status, and what the engine reads
    from numbers that stands for a concept (a late period)."""
    clauses = clauses or Clauses.of(text)
    matches = lexicon.find(text, clauses)
    denials = [
        match
        for match in matches
        if match.concept.startswith(DENIAL_MARK) and _status(text, clauses, match) is Status.PRESENT
    ]
    found = [Finding(d.concept.removeprefix(DENIAL_MARK), Status.NEGATED, d.start, d.end) for d in denials]
    for match in matches:
        if not match.concept.startswith(DENIAL_MARK) and not _inside_denial(match, denials, lexicon):
            found.append(Finding(match.concept, _status(text, clauses, match), match.start, match.end))
    return found + _late_period(text, lexicon, clauses)


def _inside_denial(match: Match, denials: list[Match], lexicon: Lexicon) -> bool:
    """The concept's own words inside a stated denial are not read: 喘气没问题 holds no 喘气. A
    denial that is itself denied ("not breathing normally", 不能动 around 能动) hides nothing."""
    for denial in denials:
        concept = denial.concept.removeprefix(DENIAL_MARK)
        if overlaps(match, denial) and match.concept in (concept, *lexicon.includers(concept)):
            return True
    return False


def _late_period(text: str, lexicon: Lexicon, clauses: Clauses) -> list[Finding]:
    """ "My last period was 7 weeks ago", 停经7周: a late period, found where the lexicon has the
    concept. "Ago" here dates the last period, so it does not make the finding history."""
    if LATE_PERIOD not in lexicon.concepts:
        return []
    reading = read_days_since_last_period(text)
    if reading is None or reading[0] <= LONGEST_NORMAL_CYCLE_DAYS:
        return []
    start, end = reading[1]
    before = text[clauses.start(start) : start]
    question = _sentence(text, clauses.start(start), clauses.end(start))
    if _negated_before(before):
        status = Status.NEGATED
    elif _general_question(question):
        status = Status.HYPOTHETICAL
    else:
        status = Status.PRESENT
    concepts = (LATE_PERIOD, *lexicon.includers(LATE_PERIOD))
    return [Finding(concept, status, start, end) for concept in concepts]


def _status(text: str, clauses: Clauses, match: Match) -> Status:
    clause_start, clause_end = clauses.start(match.start), clauses.end(match.start)
    before = text[clause_start : match.start]
    after = text[match.end : clause_end]
    clause = text[clause_start:clause_end]
    question = _sentence(text, clause_start, clause_end)
    if _negated_before(before) or _negated_after(after) or _negated_inside(text, match):
        status = Status.NEGATED
    elif _general_question(question):
        status = Status.HYPOTHETICAL
    elif (_HISTORY.search(clause) or (_EXPERIENCED.match(after) and not _NEVER_BEFORE.search(clause))) and (
        not _PRESENT.search(clause)
    ):
        status = Status.HISTORICAL
    else:
        status = Status.PRESENT
    return status


def _sentence(text: str, start: int, end: int) -> str:
    """The clause with its closing mark, so a question can be recognised as one."""
    return text[start : min(len(text), end + 1)].strip()


def _general_question(sentence: str) -> bool:
    if _GENERAL_QUESTION_EN.match(sentence) and not _PERSONAL_EN.search(sentence):
        return True
    return bool(_GENERAL_QUESTION_ZH.search(sentence)) and not _PERSONAL_ZH.search(sentence)


def _negated_inside(text: str, match: Match) -> bool:
    """A negation between the parts of a gapped term: 嗓子不疼, "chest not really painful"."""
    for start, end in match.gaps:
        gap = text[start:end]
        if _EN_NEGATION.search(_EN_PSEUDO_NEGATION.sub(" ", gap)):
            return True
        if _ZH_NEGATION.search(_ZH_PSEUDO_NEGATION.sub("#", gap)):
            return True
    return False


def _negated_before(before: str) -> bool:
    words = before.split()
    reach = _EN_COORDINATED_WINDOW_WORDS if _EN_COORDINATED.search(before) else _EN_NEGATION_WINDOW_WORDS
    window = " ".join(words[-reach:])
    cleaned = _EN_PSEUDO_NEGATION.sub(" ", window)
    if _EN_NEGATION.search(cleaned):
        return True
    if _EN_DENIAL.search(" ".join(words[-_EN_DENIAL_WINDOW_WORDS:])):
        return True
    if _EN_DENIED_THOUGHT.search(before):
        return True
    zh_reach = _ZH_COORDINATED_WINDOW_CHARS if _ZH_COORDINATED.search(before) else _ZH_NEGATION_WINDOW_CHARS
    zh_window = before[-(zh_reach + 2) :]
    zh_cleaned = _ZH_PSEUDO_NEGATION.sub("#", zh_window)
    cues = list(_ZH_NEGATION.finditer(zh_cleaned))
    if not cues:
        return False
    gap = zh_cleaned[cues[-1].end() :]
    return len(gap.replace(" ", "")) <= zh_reach and "#" not in gap


def _negated_after(after: str) -> bool:
    """ "the fever is gone", "bleeding has stopped", 烧退了: resolved, right after the finding;
    "pregnancy test was negative", 新冠检测是阴性: tested for and ruled out."""
    return _EN_AFTER.match(after) is not None or _ZH_AFTER.match(after.strip()) is not None
