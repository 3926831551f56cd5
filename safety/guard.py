"""The guard on model output: every model text passes here before a patient sees it.

It rejects doses and prescriptions (AI-generated prescriptions are forbidden under China's
internet-diagnosis rules), definitive diagnoses, claims to be a doctor or a human, advice that
contradicts the disposition, the wrong language, links or phone numbers other than the
configured ones, and excessive length. On rejection the caller sends the template text.
Decisions are counted and logged without the text.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum

from safety.levels import Level
from safety.text import Lang, detect_language, normalise

log = logging.getLogger(__name__)


class Rejection(StrEnum):
    DOSE = "dose"
    PRESCRIPTION = "prescription"
    DIAGNOSIS = "diagnosis"
    IMPERSONATION = "impersonation"
    CONTRADICTS_LEVEL = "contradicts_level"
    WRONG_LANGUAGE = "wrong_language"
    LINK = "link"
    PHONE_NUMBER = "phone_number"
    TOO_LONG = "too_long"
    EMPTY = "empty"


_DOSE = re.compile(
    r"\d+(?:\.\d+)?\s*(?:mg|mcg|µg|ug|g|ml|iu|units?|tablets?|pills?|capsules?|drops?|puffs?|sachets?)\b"
    r"|\b(?:once|twice|three times|four times|\d+ times)\s+(?:a|per)\s+day\b|\bevery \d+\s*(?:hours?|hrs?)\b"
    r"|\bmg/kg\b|\d+(?:\.\d+)?\s*(?:毫克|毫升|微克|克|片|粒|袋|支|滴|喷|单位)"
    r"|(?:每日|每天|一天|一日)\s*[一二两三四五六\d]\s*次|每\s*[\d一二两三四五六八]+\s*(?:小时|个小时)"
)
_PRESCRIPTION = re.compile(
    r"\b(?:i (?:will |'ll )?prescribe|prescription for|i recommend taking|you should take|take some)\b"
    r"|开(?:个|点|些)?药|处方|建议(?:你|您)?服用|吃点.{0,6}药|给你开"
)
_DIAGNOSIS = re.compile(
    r"\b(?:you have (?:a |an )?(?!to\b)[a-z]*(?:itis|emia|oma|osis|syndrome|disease|infection|cancer"
    r"|diabetes|flu|covid|pneumonia|migraine|stroke|heart attack)|you(?:'ve| have) got|this is definitely|"
    r"it is definitely|you are suffering from|the diagnosis is|i diagnose)\b"
    r"|你(?:得了|患了|患有|确诊)|诊断为|确诊为|肯定是|一定是.{0,8}(?:病|炎|癌|症)"
)
_IMPERSONATION = re.compile(
    r"\b(?:i am|i'm|as) (?:a |your )?(?:doctor|physician|nurse|gp|human|real person|medical professional)\b"
    r"|我是(?:医生|大夫|护士|真人|人类)|作为(?:一名)?医生"
)
_REASSURING = re.compile(
    r"\b(?:no need to (?:see|visit|call)|don'?t need (?:a|to see a) doctor|nothing to worry|not serious"
    r"|no need for (?:a )?doctor|just rest at home|stay home)\b"
    r"|不用(?:看|去)?(?:医生|医院|就医)|不需要就医|没什么大不了|不严重|在家休息就行"
)
_ESCALATING = re.compile(
    r"\b(?:call (?:an )?ambulance|emergency (?:department|room)|go to (?:the )?(?:a&e|er|hospital))\b"
    r"|叫救护车|去急诊|马上去医院"
)
_LINK = re.compile(r"https?://|www\.|\b[a-z0-9-]+\.(?:com|cn|org|net|io|uk)\b")
_PHONE = re.compile(r"(?<![\d.])\+?\d[\d\- ]{2,}\d(?![\d.])")


@dataclass(frozen=True, slots=True)
class Verdict:
    accepted: bool
    reason: Rejection | None = None


class OutputGuard:
    """Checks model text for one patient turn against the disposition and the region."""

    def __init__(self, allowed_numbers: frozenset[str], max_chars: int = 700) -> None:
        self.allowed_numbers = {re.sub(r"\D", "", number) for number in allowed_numbers}
        self.max_chars = max_chars
        self.counts: Counter[str] = Counter()

    def check(self, text: str, *, lang: Lang, level: Level | None = None) -> Verdict:
        verdict = self._check(text, lang, level)
        self.counts["accepted" if verdict.accepted else str(verdict.reason)] += 1
        if not verdict.accepted:
            log.info("guard rejected model text: %s (%d chars)", verdict.reason, len(text))
        return verdict

    def _check(self, text: str, lang: Lang, level: Level | None) -> Verdict:
        folded = normalise(text)
        if not folded:
            return Verdict(False, Rejection.EMPTY)
        if len(text) > self.max_chars:
            return Verdict(False, Rejection.TOO_LONG)
        if detect_language(text) not in (lang, None):
            return Verdict(False, Rejection.WRONG_LANGUAGE)
        checks = (
            (_DOSE, Rejection.DOSE),
            (_PRESCRIPTION, Rejection.PRESCRIPTION),
            (_DIAGNOSIS, Rejection.DIAGNOSIS),
            (_IMPERSONATION, Rejection.IMPERSONATION),
            (_LINK, Rejection.LINK),
        )
        for pattern, reason in checks:
            if pattern.search(folded):
                return Verdict(False, reason)
        for number in _PHONE.findall(folded):
            if re.sub(r"\D", "", number) not in self.allowed_numbers and len(re.sub(r"\D", "", number)) >= 3:
                return Verdict(False, Rejection.PHONE_NUMBER)
        # reassurance only where the disposition is self-care: not before triage has decided
        if (level is None or level >= Level.CONSULTATION) and _REASSURING.search(folded):
            return Verdict(False, Rejection.CONTRADICTS_LEVEL)
        if level is not None and level <= Level.CONSULTATION and _ESCALATING.search(folded):
            return Verdict(False, Rejection.CONTRADICTS_LEVEL)
        return Verdict(True)
