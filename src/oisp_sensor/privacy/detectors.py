"""Finding secrets and personal data in text, fast and without false alarms.

Speed comes from letting the regex engine skip: patterns start with a literal
("sk-", "-----BEGIN ", ":") or a character class, and their boundary check (a
look-behind) comes after that first character, so `re` can use its prefix search
instead of trying every alternative at every position. Patterns that cannot start
that way run only when a cheap `in` test finds their trigger ("@", "earer", "?").
Text without candidates costs a few fast searches, not a regex step per character.

Bounded work on hostile input: a match can only start where a token starts and
every repetition is bounded or unambiguous, so regex scanning is linear; the
Python-level checks of candidates are charged to a per-string budget (`_Budget`).

Regexes only propose candidates; checks that regexes are bad at are Python:
Luhn for cards, ISO 13616 mod-97 for IBANs, digit counts and grouping for phone
numbers, SSA ranges for US SSNs. Numbers share one candidate pattern (a run of
digits and separators) that `_classify_number` labels, which keeps dates,
versions, ids and timestamps from being taken for phone numbers.

Masked values become `[LABEL:xxxxxxxx]` (see redact.py). No detector matches a
placeholder, and every detector treats the `]` that ends one as part of a word, so
a placeholder creates no new token boundary: redacting twice changes nothing.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from oisp_sensor.errors import ConfigError


class Kind(StrEnum):
    SECRET = "secret"
    PII = "pii"
    CUSTOM = "custom"
    LIMIT = "limit"  # not a detector: text removed because it had too many candidates


@dataclass(frozen=True, slots=True)
class Finding:
    """One value to mask: where it is in the scanned text and what it is."""

    start: int
    end: int
    label: str  # placeholder label, e.g. "EMAIL"
    kind: Kind
    value: str  # the normalised value, hashed into the placeholder; never stored
    priority: int = 50  # who wins when two findings overlap at the same start


# --- secrets with a recognisable shape -------------------------------------------------

_T = r"A-Za-z0-9_\-"  # characters of a token


# Keys and tokens with a fixed prefix. Each alternative starts with its literal, and
# its boundary check (a look-behind) comes after it, so the combined regex keeps the
# engine's first-character prefilter: it skips every position whose character
# cannot start any of them. Which alternative matched is read from the prefix.
_TOKEN_PATTERNS = [
    # PEM private keys, including one cut off before its END line (then the body up
    # to the first character that cannot be part of it). JSON-escaped newlines (`\n`
    # as two characters) count as body too.
    (
        "-----",
        "PRIVATE_KEY",
        r"-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----"
        r"(?:[A-Za-z0-9+/=\s:,.\-]|\\[nr])*?"
        r"(?:-----END (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----"
        r"|(?=[^A-Za-z0-9+/=\s:,.\-\\]|\\[^nr]|\\?$))",
    ),
    ("sk-ant-", "ANTHROPIC_KEY", rf"sk-ant-(?<![{_T}\]]sk-ant-)[{_T}]{{20,}}"),
    # sk-, sk-proj-, sk-svcacct-, sk-admin-. Random keys contain a digit;
    # "sk-learn-compatible-interfaces" does not.
    ("sk-", "OPENAI_KEY", rf"sk-(?<![{_T}\]]sk-)(?!ant-)(?=[{_T}]*[0-9])[{_T}]{{20,}}"),
    ("sk_", "STRIPE_KEY", r"sk_(?<![A-Za-z0-9_\]]sk_)(?:live|test)_[A-Za-z0-9]{16,}"),
    ("rk_", "STRIPE_KEY", r"rk_(?<![A-Za-z0-9_\]]rk_)(?:live|test)_[A-Za-z0-9]{16,}"),
    ("AIza", "GOOGLE_API_KEY", rf"AIza(?<![{_T}\]]AIza)[{_T}]{{35,}}"),
    (
        "A",
        "AWS_ACCESS_KEY",
        r"A(?<![A-Za-z0-9\]]A)(?:KIA|SIA|BIA|CCA)[A-Z0-9]{16}(?![A-Za-z0-9])",
    ),
    ("gh", "GITHUB_TOKEN", r"gh(?<![A-Za-z0-9_\]]gh)[pousr]_[A-Za-z0-9]{36,}"),
    ("github_pat_", "GITHUB_TOKEN", r"github_pat_(?<![A-Za-z0-9_\]]github_pat_)[A-Za-z0-9_]{22,}"),
    (
        "xox",
        "SLACK_TOKEN",
        r"xox(?<![A-Za-z0-9\-\]]xox)[abprs]-(?=[A-Za-z0-9\-]*[0-9])[A-Za-z0-9\-]{10,}",
    ),
    ("eyJ", "JWT", rf"eyJ(?<![{_T}\]]eyJ)[{_T}]{{5,}}\.eyJ[{_T}]{{5,}}\.[{_T}]*"),
]
_TOKENS = re.compile("|".join(p for _, _, p in _TOKEN_PATTERNS))
_TOKEN_LABELS = [(prefix, label) for prefix, label, _ in _TOKEN_PATTERNS]


def _token_label(value: str) -> str:
    return next(label for prefix, label in _TOKEN_LABELS if value.startswith(prefix))


# `Bearer <token>`: tokens have digits, prose ("bearer announcements") does not.
_BEARER = re.compile(
    r"(?<![A-Za-z0-9_\]])(?i:bearer)\s+"
    r"(?P<v>(?=[A-Za-z0-9._~+/=\-]*[0-9])[A-Za-z0-9._~+/=\-]{8,})"
)
# scheme://user:password@host, also JSON-escaped (`:\/\/`): the password only.
_URL_PASSWORD = re.compile(
    r":(?:\\?/){2}[^\s/?#@:\"'\\<>\[\]]{0,128}:(?P<v>[^\s/?#@\"'\\<>\[\]]{1,256})@"
)

# Credentials in query strings (Gemini's ?key=, signed URLs' sig=).
_QUERY_SECRET = [
    re.compile(
        re.escape(sep) + r"(?i:key|api_key|apikey|api-key|access_token|token|sig|signature"
        r"|password|secret|client_secret)=(?P<v>(?!\[)[^&\s#\"'<>\[\]]{4,})"
    )
    for sep in "?&"
]

# --- values named as secrets: `password=...`, `"api_key": "..."`, `Authorization: ...` --
#
# Found from the `:` or `=` backwards: the separators are literals the engine finds
# fast, and the name before them is checked with str.endswith on a short window.

_ASSIGN = [(sep, re.compile(sep + r"[ \t]*[\"']?")) for sep in (":", "=")]
_AWS_SECRET_NAMES = (
    "aws_secret_access_key",
    "aws_secret_key",
    "secret_access_key",
    "secretaccesskey",
    "aws_secret",
)
_HEADER_NAMES = (
    "authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "x-auth-token",
    "ocp-apim-subscription-key",
    "cookie",
)
_SECRET_NAMES = (
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "api_key",
    "apikey",
    "access_key",
    "private_key",
    "auth_token",
    "access_token",
    "refresh_token",
    "token",
)
_AWS_SECRET_VALUE = re.compile(r"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
# Atomic: after "Bearer " the value must follow; "Bearer" itself is never the value.
_HEADER_VALUE = re.compile(
    r"(?>(?:(?i:bearer|basic|token|digest|aws4-hmac-sha256)\s+)?)"
    r"(?P<v>(?!\[)[^\s\"',;\[\]<>]{4,})"
)
_COOKIE_VALUE = re.compile(r"(?!\[)[^\r\n\"'\[\]<>]{4,}")
# `[SECRET:` — the separator belongs to one of our placeholders, not to an assignment.
_PLACEHOLDER_START = re.compile(r"\[[A-Z][A-Z0-9_]*\Z")
_SECRET_VALUE = re.compile(r"(?!\[)[^\s\"',;&<>\[\]]{6,}")


def _assignment(text: str, sep: int, value_at: int) -> Finding | None:
    """The value after `:`/`=` at `sep` if the name before it says it is a secret."""
    window = text[max(0, sep - 40) : sep]
    name = window.rstrip(" \t\"'").lower()
    if not name or not name[-1].isalpha() or _PLACEHOLDER_START.search(window):
        return None
    flat = name.replace("-", "_").replace(".", "_").replace(" ", "_")
    if flat.endswith(_AWS_SECRET_NAMES) and _bounded(flat, _AWS_SECRET_NAMES):
        m = _AWS_SECRET_VALUE.match(text, value_at)
        if m:
            return Finding(m.start(), m.end(), "AWS_SECRET_KEY", Kind.SECRET, m.group(), 10)
    if text[sep] == ":" and name.endswith(_HEADER_NAMES) and _bounded(name, _HEADER_NAMES):
        if name.endswith("cookie"):
            m = _COOKIE_VALUE.match(text, value_at)
            span = m.span() if m else None
        else:
            m = _HEADER_VALUE.match(text, value_at)
            span = m.span("v") if m else None
        if span is not None:
            value = text[span[0] : span[1]].rstrip()
            label = _specific_label(value) or "AUTH_HEADER"
            return Finding(span[0], span[0] + len(value), label, Kind.SECRET, value, 20)
    if flat.endswith(_SECRET_NAMES) and _bounded(flat, _SECRET_NAMES):
        m = _SECRET_VALUE.match(text, value_at)
        if m:
            label = _specific_label(m.group()) or "SECRET"
            return Finding(m.start(), m.end(), label, Kind.SECRET, m.group(), 30)
    return None


def _bounded(name: str, names: tuple[str, ...]) -> bool:
    """The name ends with one of `names` as a whole word ("max_token" yes, "tokens" no)."""
    for candidate in names:
        if name.endswith(candidate):
            before = name[-len(candidate) - 1 : -len(candidate)]
            if not before or not (before.isalnum() or before == "]"):
                return True
    return False


_SPECIFIC = [(label, re.compile(p)) for _, label, p in _TOKEN_PATTERNS if label != "PRIVATE_KEY"]


def _specific_label(value: str) -> str | None:
    """Which key a generic detector's value is, so `Bearer sk-...` is labelled OPENAI_KEY."""
    for label, regex in _SPECIFIC:
        m = regex.match(value)
        if m and m.end() == len(value):
            return label
    return None


# --- personal data ---------------------------------------------------------------------

_EMAIL = re.compile(
    r"[A-Za-z0-9._%+\-](?<![A-Za-z0-9._%+\-\]].)[A-Za-z0-9._%+\-]{0,63}"
    r"@(?:[A-Za-z0-9\-]{1,63}\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9])"
)
# ISO 13616: country, check digits, up to 30 alphanumerics, printed in groups of four.
_IBAN = re.compile(r"[A-Z](?<![A-Za-z0-9\]].)[A-Z][0-9]{2}(?: ?[A-Z0-9]){10,30}(?![A-Za-z0-9])")
# Any run of digits and separators: phone numbers, cards and SSNs are told apart (and
# dates, versions and ids rejected) by `_classify_number`.
_NUMBER = re.compile(r"[+(0-9](?<![\w+.\-\]].)[0-9 ().\-]{5,}[0-9](?!\w)")
_MAX_NUMBER_TEXT = 40  # longer than any single formatted phone number or card
_ANY_DIGIT = re.compile(r"[0-9]")


# --- the scanner -----------------------------------------------------------------------


class _OutOfBudget(Exception):
    """Too many candidates in one string: the rest of it is not scanned but removed."""

    def __init__(self, position: int) -> None:
        self.position = position


# Candidate checks allowed per string: thousands of numbers, addresses or keys in
# one message are fine, while a hostile 16 MB string made of nothing else costs
# well under a second (its tail is then removed, not passed on unscanned).
BUDGET_BASE = 5_000
BUDGET_MAX_EXTRA = 60_000


class _Budget:
    """Caps the Python-level work per string, so hostile text costs bounded time.

    Regex scanning is linear, but each candidate costs microseconds of Python; a
    16 MB response made of nothing but phone-number-like runs must not stall the
    pipeline for minutes. Ordinary text never comes close to the cap.
    """

    __slots__ = ("left",)

    def __init__(self, text_length: int) -> None:
        self.left = BUDGET_BASE + min(text_length // 128, BUDGET_MAX_EXTRA)

    def spend(self, position: int, n: int = 1) -> None:
        self.left -= n
        if self.left < 0:
            raise _OutOfBudget(position)


_LABEL = re.compile(r"[^A-Z0-9_]+")
UNSCANNED = "UNSCANNED"  # label of a string's tail removed because it exceeded the budget


@dataclass(frozen=True, slots=True)
class CustomPattern:
    label: str
    regex: re.Pattern[str]


def compile_custom(name: str, regex: str) -> CustomPattern:
    """A pattern from the config; its label is the name, upper-cased (`[EMPLOYEE_ID:...]`)."""
    label = _LABEL.sub("_", name.upper()).strip("_") or "CUSTOM"
    try:
        return CustomPattern(label, re.compile(regex))
    except re.error as e:
        raise ConfigError(f"redaction pattern {name!r}: not a valid regular expression: {e}") from e


class Scanner:
    """Finds secrets, and optionally personal data and custom patterns, in text."""

    def __init__(
        self, *, secrets: bool = True, pii: bool = True, custom: Sequence[tuple[str, str]] = ()
    ) -> None:
        self.secrets = secrets
        self.pii = pii
        self.custom = [compile_custom(name, regex) for name, regex in custom]

    def find(self, text: str) -> list[Finding]:
        """Non-overlapping findings in `text`, in order.

        When `text` holds more candidates than its budget allows, a last finding
        labelled UNSCANNED covers everything from where the budget ran out.
        """
        found: list[Finding] = []
        budget = _Budget(len(text))
        try:
            if self.secrets:
                self._secrets(text, found, budget)
            if self.pii:
                self._pii(text, found, budget)
            for pattern in self.custom:
                for m in pattern.regex.finditer(text):
                    budget.spend(m.start())
                    if m.end() > m.start():
                        found.append(
                            Finding(m.start(), m.end(), pattern.label, Kind.CUSTOM, m.group(), 5)
                        )
        except _OutOfBudget as e:
            return _cut(found, e.position, text)
        return _without_overlaps(found, text) if len(found) > 1 else found

    @staticmethod
    def _secrets(text: str, found: list[Finding], budget: _Budget) -> None:
        first = _TOKENS.search(text)
        if first is not None:
            for m in _TOKENS.finditer(text, first.start()):
                budget.spend(m.start())
                found.append(Finding(*m.span(), _token_label(m.group()), Kind.SECRET, m.group()))
        generic = []
        if "earer" in text or "EARER" in text:
            generic.append((_BEARER, "BEARER_TOKEN"))
        if "@" in text:
            generic.append((_URL_PASSWORD, "URL_PASSWORD"))
        if "?" in text:
            generic.append((_QUERY_SECRET[0], "URL_SECRET"))
        if "&" in text:
            generic.append((_QUERY_SECRET[1], "URL_SECRET"))
        for regex, default in generic:
            for m in regex.finditer(text):
                budget.spend(m.start())
                value = m.group("v")
                label = _specific_label(value) or default
                found.append(Finding(*m.span("v"), label, Kind.SECRET, value, 40))
        for sep, regex in _ASSIGN:
            if sep in text:
                for m in regex.finditer(text):
                    budget.spend(m.start())
                    finding = _assignment(text, m.start(), m.end())
                    if finding is not None:
                        found.append(finding)

    @staticmethod
    def _pii(text: str, found: list[Finding], budget: _Budget) -> None:
        if "@" in text:
            for m in _EMAIL.finditer(text):
                budget.spend(m.start())
                found.append(Finding(*m.span(), "EMAIL", Kind.PII, m.group().lower(), 60))
        if _ANY_DIGIT.search(text) is None:
            return
        pos = 0
        while (iban := _IBAN.search(text, pos)) is not None:
            # A candidate may run into the next IBAN; scanning resumes where the valid
            # one ends (or just after a candidate that is none).
            start = iban.start()
            budget.spend(start)
            end = _iban_end(iban.group())
            if end:
                value = iban.group()[:end].replace(" ", "")
                found.append(Finding(start, start + end, "IBAN", Kind.PII, value, 60))
                pos = start + end
            else:
                pos = start + 1
        for m in _NUMBER.finditer(text):
            budget.spend(m.start())
            _classify_number(m.group(), m.start(), budget, found)

    def redact(self, text: str, placeholder: Callable[[Finding], str]) -> tuple[str, list[Finding]]:
        """`text` with every finding replaced by `placeholder(finding)`, and the findings."""
        found = self.find(text)
        if not found:
            return text, found
        out: list[str] = []
        last = 0
        for f in found:
            out.append(text[last : f.start])
            out.append(placeholder(f))
            last = f.end
        out.append(text[last:])
        return "".join(out), found


def _without_overlaps(found: list[Finding], text: str) -> list[Finding]:
    """Overlapping findings become one: it keeps the label of the one that starts first
    (at the same start, the more specific detector, then the longer) and covers both,
    so what the other found is masked too."""
    found.sort(key=lambda f: (f.start, f.priority, f.start - f.end))
    out: list[Finding] = []
    for f in found:
        if out and f.start < out[-1].end:
            last = out[-1]
            if f.end > last.end:
                value = text[last.start : f.end]
                out[-1] = Finding(last.start, f.end, last.label, last.kind, value, last.priority)
            continue
        out.append(f)
    return out


def _cut(found: list[Finding], position: int, text: str) -> list[Finding]:
    """Findings before `position`, then one finding removing the rest of the text."""
    kept = _without_overlaps(found, text) if found else []
    for f in kept:
        if f.end > position:
            position = min(position, f.start)
    kept = [f for f in kept if f.end <= position]
    kept.append(Finding(position, len(text), UNSCANNED, Kind.LIMIT, text[position:], 0))
    return kept


# --- numbers: phone, card, SSN ---------------------------------------------------------

_SSN = re.compile(r"([0-9]{3})([- ])([0-9]{2})\2([0-9]{4})\Z")
_US_PHONE = re.compile(r"(?:1[ .\-]?)?(?:\([0-9]{3}\) ?|[0-9]{3}[ .\-])[0-9]{3}[ .\-][0-9]{4}\Z")
# National formats with a trunk prefix 0 and at least one separator: "020 7946 0958",
# "06 12 34 56 78", "030 12345678", "0171-1234567".
_NATIONAL_PHONE = re.compile(r"0[1-9][0-9]{0,4}(?:[ \-][0-9]{2,8}){1,4}\Z")
_SEPARATORS = re.compile(r"[ ().\-]+")
_PIECES = re.compile(r"[^ ]+")
_NOT_DIGITS = str.maketrans("", "", " ().-+")  # all a number candidate holds besides digits
_MAX_PIECES = 6  # a phone number or card is printed in at most six groups


def _classify_number(text: str, offset: int, budget: _Budget, out: list[Finding]) -> None:
    """Phone numbers, cards and SSNs in a digit run; nothing for dates, ids, versions.

    A run may hold several numbers ("555-123-4567 555-987-6543" is one run when only
    spaces separate them), so unless the whole run is one, its space-separated
    pieces are tried: from each piece, the longest group of up to six pieces with a
    plausible digit count. Work is linear in the run's length and charged to the
    budget; findings go straight to `out`, so those made before the budget runs out
    are kept (the text before the cut is emitted, and must be masked).
    """
    if len(text) <= _MAX_NUMBER_TEXT:
        hit = _number_at(text)
        if hit is not None:
            start, end, label, value = hit
            out.append(Finding(offset + start, offset + end, label, Kind.PII, value, 60))
            return
    if " " not in text:
        return
    # A sliding window of at most six pieces: a run may be megabytes long.
    pieces = (
        (m.start(), m.end(), len(m.group().translate(_NOT_DIGITS))) for m in _PIECES.finditer(text)
    )
    window: deque[tuple[int, int, int]] = deque()
    whole_tried, first, exhausted = len(text) <= _MAX_NUMBER_TEXT, True, False
    while True:
        while not exhausted and len(window) < _MAX_PIECES:
            piece = next(pieces, None)
            if piece is None:
                exhausted = True
            else:
                window.append(piece)
        if not window:
            return
        budget.spend(offset + window[0][0])  # every piece costs, found or not
        digits = 0
        best: tuple[int, tuple[int, int, str, str]] | None = None
        for j, (_, end, count) in enumerate(window):
            digits += count
            if digits > 19:
                break
            whole = whole_tried and first and exhausted and j == len(window) - 1
            if digits < 7 or whole:
                continue  # too few digits, or the whole run (already tried)
            budget.spend(offset + window[0][0])
            hit = _number_at(text[window[0][0] : end])
            if hit is not None:
                best = (j, hit)
        if best is not None:
            _, (start, stop, label, value) = best
            base = offset + window[0][0]
            _add_number(
                out, Finding(base + start, base + stop, label, Kind.PII, value, 60), text, offset
            )
        window.popleft()  # every start is tried: "110 11 4111" may hide in "…4111 1111 1111 1111"
        first = False


_NUMBER_SEVERITY = {"CREDIT_CARD": 3, "US_SSN": 2, "PHONE": 1}


def _add_number(out: list[Finding], finding: Finding, text: str, offset: int) -> None:
    """Append a number found in a run; one that overlaps the previous joins it.

    Digit soup can be read two ways ("110 11 4111 1111 1111 1111": an SSN, or a card
    after "110 11"); masking the union of both readings keeps either from leaking.
    The finding goes to `out` at once, so it survives the budget running out.
    """
    last = out[-1] if out else None
    same_run = last is not None and last.label in _NUMBER_SEVERITY and last.start >= offset
    if last is None or not same_run or finding.start >= last.end:
        out.append(finding)
        return
    if finding.end <= last.end:
        return
    label = max(last.label, finding.label, key=lambda x: _NUMBER_SEVERITY.get(x, 0))
    union = text[last.start - offset : finding.end - offset].translate(_NOT_DIGITS)
    out[-1] = Finding(last.start, finding.end, label, Kind.PII, union, 60)


def _number_at(text: str) -> tuple[int, int, str, str] | None:
    """(start, end, label, value) of the phone number, card or SSN that `text` is, if any.

    Punctuation around it is not part of it: "((415) 555-2671", "+14155552671)",
    "(06 12 34 56 78".
    """
    start, end = 0, len(text)
    while start < end and text[start] in ").-":
        start += 1
    while end > start and not text[end - 1].isdigit():
        end -= 1
    opening = start
    while opening < end and text[opening] == "(":
        opening += 1
    if opening > start and ")" in text[opening:end]:
        opening -= 1  # "(415) ...": the last "(" belongs to the number
    kind = _number_kind(text[opening:end]) if end - opening >= 7 else None
    return None if kind is None else (opening, end, kind[0], kind[1])


def _number_kind(text: str) -> tuple[str, str] | None:
    digits = text.translate(_NOT_DIGITS)
    n = len(digits)
    if n < 7 or len(set(digits)) == 1 or text[0] in ".-)" or text.count("(") > 1:
        return None
    if 13 <= n <= 19 and _card_shaped(text) and _luhn(digits) and _card_prefix(digits):
        return "CREDIT_CARD", digits
    m = _SSN.match(text)
    if m:
        return ("US_SSN", digits) if _ssn_valid(m.group(1), m.group(3), m.group(4)) else None
    if text[0] == "+":
        # E.164: at most 15 digits including the country code, which never starts
        # with 0. Parentheses, spaces, dots and dashes are presentation only.
        if 8 <= n <= 15 and digits[0] != "0" and text.count("(") == text.count(")"):
            return "PHONE", "+" + digits
        return None
    # NANP: area codes never start with 0 or 1 (which also rejects "123-456-7890").
    if _US_PHONE.match(text) and digits[-10] not in "01":
        return "PHONE", digits[-10:]
    if _NATIONAL_PHONE.match(text) and 9 <= n <= 12 and not _looks_like_date(text):
        return "PHONE", digits
    return None


def _card_shaped(text: str) -> bool:
    """All digits, or groups split by one kind of separator the way cards are printed."""
    if text.isdigit():
        return True
    seps = set(_SEPARATORS.findall(text))
    if len(seps) != 1 or seps.pop() not in (" ", "-"):
        return False
    groups = [len(g) for g in re.split(r"[ \-]", text)]
    # 4-4-4-4(-3), Amex 4-6-5, Diners 4-6-4.
    return (groups[:4] == [4, 4, 4, 4] and len(groups) <= 5) or groups in ([4, 6, 5], [4, 6, 4])


def _luhn(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = ord(c) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card_prefix(digits: str) -> bool:
    """Issuer ranges of the networks in common use (ISO/IEC 7812 IINs) and their lengths."""
    n, two, four = len(digits), int(digits[:2]), int(digits[:4])
    if digits[0] == "4":  # Visa
        return n in (13, 16, 19)
    if two in (34, 37):  # American Express
        return n == 15
    if 51 <= two <= 55 or 2221 <= four <= 2720:  # Mastercard
        return n == 16
    if 3528 <= four <= 3589 or digits[0] == "6":  # JCB; Discover, UnionPay, Maestro
        return n >= 16
    return two in (30, 36, 38, 39, 50, 56, 57, 58)  # Diners Club, Maestro


def _ssn_valid(area: str, group: str, serial: str) -> bool:
    """The SSA never issues area 000, 666 or 900-999, group 00 or serial 0000."""
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _looks_like_date(text: str) -> bool:
    parts = re.split(r"[ \-]", text)
    return len(parts) == 3 and len(parts[0]) in (2, 4) and all(len(p) <= 4 for p in parts)


# --- IBAN ------------------------------------------------------------------------------

# Lengths by country (ISO 13616 registry); a country not listed is accepted at 15-34.
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BR": 29, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18,
    "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22,
    "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LI": 21,
    "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27,
    "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25,
    "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27,
    "TN": 24, "TR": 26, "UA": 29, "VG": 24, "XK": 20,
}  # fmt: skip


def _iban_valid(iban: str) -> bool:
    expected = _IBAN_LENGTHS.get(iban[:2])
    if (expected is not None and len(iban) != expected) or not 15 <= len(iban) <= 34:
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _iban_end(text: str) -> int:
    """Length of the longest prefix of `text` that is a valid IBAN, ending at a group; 0 if none.

    The candidate may run into the next word ("DE89 3704 ... 00 FOR"), so trailing
    space-separated groups are dropped until the checksum holds.
    """
    end = len(text)
    while end >= 15:
        if _iban_valid(text[:end].replace(" ", "")):
            return end
        end = text.rfind(" ", 0, end)
        if end < 0:
            return 0
    return 0
