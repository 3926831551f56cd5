"""Numbers patients write: temperatures, durations, ages, and who the patient is.

Everything works on normalised text (safety.text.normalise) and runs in microseconds: a handful
of compiled regular expressions, no model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Who = Literal["self", "child", "other"]
Sex = Literal["M", "F"]

FEVER_CELSIUS = 38.0  # NICE NG143 / NHS: a temperature of 38 C or more is a fever

_CN_DIGITS = {
    "零": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_EN_NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "couple of": 2,
    "a couple of": 2,
    "few": 3,
    "a few": 3,
    "several": 3,
}
_CN_NUM = r"[零一二两三四五六七八九十百半]+"
_EN_NUM = r"\d+(?:\.\d+)?|a couple of|couple of|a few|few|several|an|a|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve"  # noqa: E501


def cn_number(text: str) -> float | None:
    """Small Chinese numerals: 三 -> 3, 十二 -> 12, 三十八 -> 38, 半 -> 0.5, 一个半 -> 1.5."""
    text = text.replace("个", "")
    if not text:
        return None
    half = 0.5 if text.endswith("半") and len(text) > 1 else 0.0
    if half:
        text = text[:-1]
    if text == "半":
        return 0.5
    if "百" in text:
        hundreds, _, rest = text.partition("百")
        base = (_CN_DIGITS.get(hundreds, 1) if hundreds else 1) * 100
        tail = cn_number(rest) if rest else 0.0
        return base + (tail or 0.0) + half
    if "十" in text:
        tens, _, units = text.partition("十")
        value = (_CN_DIGITS.get(tens, 1) if tens else 1) * 10 + (_CN_DIGITS.get(units, 0) if units else 0)
        return value + half
    digits = [_CN_DIGITS.get(char) for char in text]
    if any(digit is None for digit in digits):
        return None
    if len(digits) == 2 and digits[0] and digits[1] == digits[0] + 1:
        return digits[1] + half  # 三四天 is three or four days: the longer, to be safe
    value = 0
    for digit in digits:
        value = value * 10 + (digit or 0)
    return value + half


def _number(token: str) -> float | None:
    token = token.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", token):
        return float(token)
    if token in _EN_NUMBERS:
        return float(_EN_NUMBERS[token])
    return cn_number(token)


# ---- temperature -------------------------------------------------------------------------

_TEMP_C = re.compile(r"(\d{2}(?:\.\d+)?)\s*(?:°\s*c\b|℃|摄氏度|度(?!\s*\d)|c\b|celsius|degrees? c\b)")
_TEMP_C_TENTHS = re.compile(r"(?<![\d.])(\d{2})\s*度\s*(\d)(?!\d)")
_TEMP_F = re.compile(r"(\d{2,3}(?:\.\d+)?)\s*(?:°\s*f\b|℉|f\b|fahrenheit|degrees? f\b)")
_TEMP_CN = re.compile(
    rf"(?:体温|烧到|烧了|发烧|高烧|低烧|量了|测了)\s*(?:有|是|到)?\s*({_CN_NUM})\s*度\s*([一二三四五六七八九])?"
)
_TEMP_CONTEXT = re.compile(
    r"(?:temp(?:erature)?|fever|feverish|febrile|thermometer|read(?:ing|s)?|体温|烧到|发烧|高烧|低烧|量了|测了)"
    r"\D{0,12}?(\d{2,3}(?:\.\d+)?)"
)
_TEMP_BARE = re.compile(r"(?<![\d.])(3[5-9]\.\d|4[0-2]\.\d)(?![\d.])")


def read_temperature(text: str) -> float | None:
    """The highest body temperature mentioned, in degrees Celsius."""
    readings: list[float] = []
    for match in _TEMP_C.finditer(text):
        readings.append(float(match.group(1)))
    for match in _TEMP_C_TENTHS.finditer(text):
        readings.append(float(match.group(1)) + float(match.group(2)) / 10)
    for match in _TEMP_F.finditer(text):
        readings.append((float(match.group(1)) - 32) * 5 / 9)
    for match in _TEMP_CN.finditer(text):
        whole = cn_number(match.group(1))
        if whole is not None:
            tenth = _CN_DIGITS.get(match.group(2) or "", 0) / 10
            readings.append(whole + tenth)
    for match in _TEMP_CONTEXT.finditer(text):
        value = float(match.group(1))
        readings.append((value - 32) * 5 / 9 if value >= 90 else value)
    for match in _TEMP_BARE.finditer(text):
        readings.append(float(match.group(1)))
    plausible = [round(value, 1) for value in readings if 34.0 <= value <= 43.5]
    return max(plausible, default=None)


# ---- age ---------------------------------------------------------------------------------

_AGE_PATTERNS: tuple[tuple[re.Pattern[str], float], ...] = (
    (re.compile(rf"\b({_EN_NUM})\s*-?\s*(?:years?|yrs?)\s*-?\s*old\b"), 1.0),
    (re.compile(r"\b(\d+(?:\.\d+)?)\s*(?:yo|y/o|y\.o\.?|yrs?|y)\b(?!\s*ago)"), 1.0),
    (re.compile(r"\baged?\s+(\d+(?:\.\d+)?)\b"), 1.0),
    (re.compile(r"\b(?:i am|i'm|im)\s+(\d{1,3})\b(?!\s*(?:weeks?|days?|months?|kg|lb|cm|%))"), 1.0),
    (re.compile(rf"\b({_EN_NUM})\s*-?\s*(?:months?|mos?|mths?)\s*-?\s*old\b"), 1 / 12),
    (re.compile(rf"\b({_EN_NUM})\s*-?\s*(?:weeks?|wks?)\s*-?\s*old\b"), 1 / 52),
    (re.compile(rf"\b({_EN_NUM})\s*-?\s*days?\s*-?\s*old\b"), 1 / 365),
    (re.compile(r"\bmy\s+(\d+(?:\.\d+)?)\s*-?\s*(?:year|yr)\b"), 1.0),
    (re.compile(r"\bmy\s+(\d+(?:\.\d+)?)\s*-?\s*(?:month|mo)\b"), 1 / 12),
    (re.compile(r"\bmy\s+(\d+(?:\.\d+)?)\s*-?\s*(?:week|wk)\b"), 1 / 52),
    (re.compile(r"\(\s*(\d{1,2})\s*\)"), 1.0),
    (re.compile(rf"(\d+(?:\.\d+)?|{_CN_NUM})\s*周?岁(半)?"), 1.0),
    (re.compile(rf"(\d+|{_CN_NUM})\s*个?\s*(?:多)?月(?:大|的宝宝|的孩子|的婴儿|宝宝)"), 1 / 12),
    (
        re.compile(
            rf"(?:宝宝|孩子|婴儿|小孩|娃|儿子|女儿|闺女|宝)\s*(?:才|刚|刚刚|刚满|满)?\s*(\d+|{_CN_NUM})\s*个\s*(?:多)?月"
        ),
        1 / 12,
    ),
    (re.compile(rf"(\d+|{_CN_NUM})\s*(?:周|星期)\s*大"), 1 / 52),
    (re.compile(rf"(?:出生|生下来)\s*(\d+|{_CN_NUM})\s*天"), 1 / 365),
    (re.compile(rf"(?:出生|生下来)\s*(\d+|{_CN_NUM})\s*个?\s*(?:多)?月"), 1 / 12),
    (re.compile(rf"(?:出生|生下来)\s*(\d+|{_CN_NUM})\s*(?:周|星期)"), 1 / 52),
    (re.compile(rf"(\d+|{_CN_NUM})\s*天大"), 1 / 365),
)
_BABY_AGE = re.compile(
    rf"\b(?:baby|son|daughter|child|infant|newborn|boy|girl|bub|grandson|granddaughter)"
    rf"(?:\s+(?:is|was|who is|aged?))?\s+({_EN_NUM})\s*-?\s*(weeks?|wks?|months?|mos?|days?|years?|yrs?)\b"
)
_BABY_UNITS = {"w": 1 / 52, "m": 1 / 12, "d": 1 / 365, "y": 1.0}
_NEWBORN = re.compile(r"\bnew\s?born\b|刚出生|新生儿")


def read_age(text: str) -> float | None:
    """The patient's age in years when the text states it (the first one mentioned)."""
    text = _without_fed_baby(text)  # a nursing mother's baby is not the patient
    found: list[tuple[int, float]] = []
    for pattern, scale in _AGE_PATTERNS:
        for match in pattern.finditer(text):
            value = _number(match.group(1))
            if value is None:
                continue
            if match.lastindex and match.lastindex >= 2 and match.group(2) == "半":
                value += 0.5
            age = value * scale
            if 0 <= age <= 120:
                found.append((match.start(), round(age, 3)))
    for match in _BABY_AGE.finditer(text):
        value = _number(match.group(1))
        if value is not None:
            found.append((match.start(), round(value * _BABY_UNITS[match.group(2)[0]], 3)))
    if not found and _NEWBORN.search(text):
        return 0.02
    return min(found)[1] if found else None


# ---- duration ----------------------------------------------------------------------------

_UNIT_HOURS = {
    "minute": 1 / 60,
    "min": 1 / 60,
    "hour": 1.0,
    "hr": 1.0,
    "h": 1.0,
    "day": 24.0,
    "night": 24.0,
    "week": 168.0,
    "wk": 168.0,
    "month": 720.0,
    "year": 8760.0,
    "分钟": 1 / 60,
    "小时": 1.0,
    "钟头": 1.0,
    "天": 24.0,
    "日": 24.0,
    "晚": 24.0,
    "周": 168.0,
    "星期": 168.0,
    "礼拜": 168.0,
    "月": 720.0,
    "年": 8760.0,
}
_EN_DURATION = re.compile(
    rf"\b({_EN_NUM})\s*(?:more\s+)?(minute|min|hour|hr|h|day|night|week|wk|month|year)s?\b(?!\s*-?\s*old)"
)
_ZH_DURATION = re.compile(
    rf"(\d+(?:\.\d+)?|{_CN_NUM})\s*(?:个)?\s*(?:多)?\s*(分钟|小时|钟头|天|日|晚|周|星期|礼拜|月|年)(?!大)"
)
_RELATIVE: tuple[tuple[re.Pattern[str], float], ...] = (
    (re.compile(r"\bsince (?:this morning|today|earlier)\b|今天早上|今早|早上开始|今天开始"), 6.0),
    (re.compile(r"\bsince (?:last night|yesterday)\b|\bovernight\b|昨天|昨晚|昨夜"), 24.0),
    (re.compile(r"\bday before yesterday\b|前天"), 48.0),
    (re.compile(r"\blast week\b|上周|上个星期|上礼拜"), 168.0),
    (re.compile(r"\bjust now\b|\ba few minutes ago\b|刚才|刚刚"), 0.25),
    (re.compile(r"\bhalf an hour\b|半小时|半个小时|半个钟头"), 0.5),
    (re.compile(r"半天"), 12.0),
    (re.compile(r"\ba week\b|一个星期|一周"), 168.0),
)


def read_duration_hours(text: str) -> float | None:
    """How long the problem has lasted, in hours, from the first duration the text states."""
    spans_of_age = _age_spans(text)
    found: list[tuple[int, float]] = []
    for match in _EN_DURATION.finditer(text):
        if any(start <= match.start() < end for start, end in spans_of_age):
            continue
        value = _number(match.group(1))
        if value is not None:
            found.append((match.start(), value * _UNIT_HOURS[match.group(2)]))
    for match in _ZH_DURATION.finditer(text):
        if any(start <= match.start() < end for start, end in spans_of_age):
            continue
        value = _number(match.group(1))
        if value is not None:
            found.append((match.start(), value * _UNIT_HOURS[match.group(2)]))
    if not found:
        for pattern, hours in _RELATIVE:
            relative = pattern.search(text)
            if relative:
                found.append((relative.start(), hours))
    return round(min(found)[1], 3) if found else None


def _age_spans(text: str) -> list[tuple[int, int]]:
    spans = [m.span() for pattern, _ in _AGE_PATTERNS for m in pattern.finditer(text)]
    return spans + [m.span(1) for m in _BABY_AGE.finditer(text)]


# ---- time since the last period ------------------------------------------------------------

_PERIOD_UNIT_DAYS = {
    "day": 1.0,
    "week": 7.0,
    "wk": 7.0,
    "month": 30.0,
    "天": 1.0,
    "日": 1.0,
    "周": 7.0,
    "星期": 7.0,
    "礼拜": 7.0,
    "月": 30.0,
}
_ABOUT_EN = r"(?:(?:about|around|roughly|nearly|almost|over|more than|at least|maybe|like)\s+)?"
_ABOUT_ZH = r"(?:大概|大约|差不多|快|已经|都|有|超过)?"
_EN_PERIOD_UNIT = r"(day|week|wk|month)s?"
_ZH_PERIOD_UNIT = r"(?:个)?\s*(?:多)?\s*(天|日|周|星期|礼拜|月)"
_LAST_PERIOD: tuple[re.Pattern[str], ...] = (
    # "my last period was about 7 weeks ago", "LMP 6 weeks ago", "last menstrual period started 2 months ago"
    re.compile(
        r"\b(?:last|previous|most recent|latest) (?:menstrual )?period\b"
        r"(?:\s+(?:was|started|came|began|ended|finished))?"
        rf"\s+{_ABOUT_EN}({_EN_NUM})\s*{_EN_PERIOD_UNIT}\s+ago\b"
    ),
    re.compile(rf"\blmp\b(?:\s+(?:was|is))?\s+{_ABOUT_EN}({_EN_NUM})\s*{_EN_PERIOD_UNIT}\s+ago\b"),
    # "haven't had a period for 7 weeks", "no period in 2 months"
    re.compile(
        r"\b(?:(?:haven'?t|have not|hasn'?t|has not|didn'?t|did not)\s+(?:had|have|got|gotten|get)|no)"
        r"\s+(?:a\s+|my\s+|her\s+)?periods?\s+(?:for|in)\s+(?:the\s+(?:last|past)\s+)?"
        rf"{_ABOUT_EN}({_EN_NUM})\s*{_EN_PERIOD_UNIT}\b"
    ),
    # 末次月经是7周前, 上次来例假两个月前
    re.compile(
        r"(?:末次月经|上次月经|上一次月经|最后一次月经|上次来月经|上一次来月经|上次例假|上次来例假|上次大姨妈|上次来大姨妈)"
        rf"\s*(?:是|在|大约是|大概是)?\s*{_ABOUT_ZH}\s*(\d+|{_CN_NUM})\s*{_ZH_PERIOD_UNIT}\s*(?:以)?前"
    ),
    # 七周没来月经, 两个多月没来例假
    re.compile(
        rf"(\d+|{_CN_NUM})\s*{_ZH_PERIOD_UNIT}\s*(?:都|了|还)?\s*没(?:有)?来(?:过)?(?:月经|例假|大姨妈)"
    ),
    # 月经两个月没来, 例假已经7周没来了, 停经7周
    re.compile(
        rf"(?:月经|例假|大姨妈)\s*{_ABOUT_ZH}\s*(\d+|{_CN_NUM})\s*{_ZH_PERIOD_UNIT}\s*(?:都|了|还)?\s*没(?:有)?来"
    ),
    re.compile(rf"停经\s*{_ABOUT_ZH}\s*(\d+|{_CN_NUM})\s*{_ZH_PERIOD_UNIT}"),
)


def read_days_since_last_period(text: str) -> tuple[float, tuple[int, int]] | None:
    """Days since the last period began, when the text says, and where it says it.

    "last period 7 weeks ago", "haven't had a period for 2 months", 末次月经7周前, 两个月没来月经.
    The longest time stated wins (a woman unsure of her dates is more likely late than not).
    """
    found: list[tuple[float, tuple[int, int]]] = []
    for pattern in _LAST_PERIOD:
        for match in pattern.finditer(text):
            value = _number(match.group(1))
            unit = _PERIOD_UNIT_DAYS.get(match.group(2))
            if value is not None and unit is not None:
                found.append((value * unit, match.span()))
    return max(found) if found else None


# ---- who is the patient ------------------------------------------------------------------

_CHILD_EN = re.compile(
    r"\bmy (?:\w+\s)?(?:son|daughter|child|kid|baby|toddler|boy|girl|little one|infant|newborn"
    r"|grandson|granddaughter|grandchild|bub|lo|twins?)\b|\bour (?:son|daughter|baby|child|kid)\b"
    r"|\b(?:baby|toddler|infant|newborn)\b"
)
_OTHER_EN = re.compile(
    r"\bmy (?:\w+\s)?(?:husband|wife|mum|mom|mother|mommy|dad|father|daddy|grandma|grandmother|granny"
    r"|grandpa|grandfather|partner|friend|brother|sister|boyfriend|girlfriend|uncle|aunt|neighbou?r"
    r"|colleague|roommate|flatmate|fiance|fiancee|spouse|parents?|in-law|nan|nana|gran)\b"
    r"|\b(?:he|she) (?:is|has|was|had|can't|cant|won't|keeps|looks|says|collapsed)\b"
)
_CHILD_ZH = re.compile(r"儿子|女儿|孩子|宝宝|小孩|闺女|婴儿|孙子|孙女|外孙|娃|小朋友|新生儿|宝贝")
_OTHER_ZH = re.compile(
    r"老公|老婆|丈夫|妻子|爱人|我爸|我妈|爸爸|妈妈|父亲|母亲|爷爷|奶奶|外公|外婆|姥姥|姥爷|朋友|哥哥|姐姐"
    r"|弟弟|妹妹|我哥|我姐|我弟|我妹|同事|室友|邻居|老人|婆婆|公公|岳父|岳母|老伴|对象|男朋友|女朋友"
)
_MALE = re.compile(
    r"\b(?:son|boy|husband|dad|daddy|father|brother|grandpa|grandfather|grandson|boyfriend|uncle"
    r"|he|him|his|man|male|guy)\b|儿子|老公|丈夫|爸|父亲|爷爷|外公|姥爷|哥|弟|孙子|男孩|男的|男性|他|岳父|公公|男朋友"
)
_FEMALE = re.compile(
    r"\b(?:daughter|girl|wife|mum|mom|mommy|mother|sister|grandma|grandmother|granny|granddaughter"
    r"|girlfriend|aunt|she|her|woman|female|lady)\b|女儿|闺女|老婆|妻子|妈|母亲|奶奶|外婆|姥姥|姐|妹|孙女|女孩"
    r"|女的|女性|她|婆婆|岳母|女朋友|怀孕|孕"
)
# "34 m", "f 28"; never the m of "I'm 20 weeks pregnant"
_SELF_SEX = re.compile(r"\b\d{1,2}\s*([mf])\b|(?<!['’])\b([mf])\s*\d{1,2}\b")


# A mother writing about herself while she feeds her baby: "I'm breastfeeding my son", 给宝宝喂奶.
# The baby fed is not the patient, and the writer is a woman.
_FED_BABY = re.compile(
    r"\b(?:breast ?feeding|breast-feeding|breastfeed|nursing|expressing for|pumping for)\s+"
    r"(?:my|our)\s+(?:[\w-]+\s){0,3}?(?:baby|son|daughter|little one|newborn|infant|boy|girl|twins?"
    r"|(?:\d+|a|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)[\s-]*"
    r"(?:days?|weeks?|months?)[\s-]*old)\b"
    r"|给(?:宝宝|孩子|娃|儿子|女儿|小孩)(?:喂奶|喂母乳|哺乳)"
)
_NURSING_SELF = re.compile(
    r"\b(?:i'?m|i am|im|i've been|ive been)\s+(?:still\s+|currently\s+)?"
    r"(?:breast ?feeding|breast-feeding|nursing)\b"
    r"|我(?:在|正在|还在)?(?:哺乳|喂奶|喂母乳)|哺乳期|给(?:宝宝|孩子|娃|儿子|女儿|小孩)(?:喂奶|喂母乳|哺乳)"
)


def _without_fed_baby(text: str) -> str:
    return _FED_BABY.sub(" ", text)


def read_who(text: str) -> Who | None:
    """Who the patient is when the text says: a child, someone else, or None (unstated)."""
    text = _without_fed_baby(text)
    child = _CHILD_EN.search(text) or _CHILD_ZH.search(text)
    other = _OTHER_EN.search(text) or _OTHER_ZH.search(text)
    if child and other:
        return "child" if child.start() <= other.start() else "other"
    if child:
        return "child"
    if other:
        return "other"
    return None


def read_sex(text: str) -> Sex | None:
    """Sex of the patient when a word for the person makes it plain (first mention wins)."""
    short = _SELF_SEX.search(text)
    if short:
        return "M" if (short.group(1) or short.group(2)) == "m" else "F"
    nursing_self = _NURSING_SELF.search(text)
    text = _without_fed_baby(text)
    if nursing_self and not (_CHILD_EN.search(text) or _CHILD_ZH.search(text)):
        return "F"
    male, female = _MALE.search(text), _FEMALE.search(text)
    if male and female:
        return "M" if male.start() < female.start() else "F"
    if male:
        return "M"
    if female:
        return "F"
    return None


@dataclass(frozen=True, slots=True)
class Quantities:
    temperature_c: float | None = None
    duration_hours: float | None = None
    age_years: float | None = None
    who: Who | None = None
    sex: Sex | None = None

    @property
    def has_fever(self) -> bool:
        return self.temperature_c is not None and self.temperature_c >= FEVER_CELSIUS


def read_quantities(text: str) -> Quantities:
    return Quantities(
        temperature_c=read_temperature(text),
        duration_hours=read_duration_hours(text),
        age_years=read_age(text),
        who=read_who(text),
        sex=read_sex(text),
    )
