"""Detectors: every kind of secret and personal data found, look-alikes left alone."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oisp_sensor.errors import ConfigError
from oisp_sensor.privacy.detectors import UNSCANNED, Finding, Kind, Scanner, compile_custom
from tests.unit.privacy import planted

SAFE = Scanner()
SECRETS_ONLY = Scanner(pii=False)


def labels(text: str, scanner: Scanner = SAFE) -> list[str]:
    return [f.label for f in scanner.find(text)]


def masked(text: str, scanner: Scanner = SAFE) -> str:
    return scanner.redact(text, lambda f: f"[{f.label}]")[0]


# --- secrets ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "value"),
    [(label, v) for label, values in planted.SECRETS.items() for v in values],
)
@pytest.mark.parametrize(
    "template",
    ["{}", "key: {} (rotate it)", '{{"api_key": "{}"}}', "export TOKEN={}\n", "`{}`", "({})"],
)
def test_every_secret_shape_is_found_in_any_surrounding(
    label: str, value: str, template: str
) -> None:
    text = template.format(value)
    out = masked(text, SECRETS_ONLY)
    assert value not in out
    assert f"[{label}]" in out, out


@pytest.mark.parametrize(("text", "value"), planted.IN_CONTEXT)
def test_secrets_recognised_by_their_context(text: str, value: str) -> None:
    out = masked(text, SECRETS_ONLY)
    assert value not in out, out
    assert "[" in out


@pytest.mark.parametrize(
    ("text", "label", "kept"),
    [
        # The generic detectors label a key they recognise by its specific type.
        (f"Authorization: Bearer {planted.OPENAI_PROJECT_KEY}", "OPENAI_KEY", "Authorization: "),
        (f"x-api-key: {planted.ANTHROPIC_KEY}", "ANTHROPIC_KEY", "x-api-key: "),
        (f"Bearer {planted.JWT}", "JWT", "Bearer "),
        (f"?key={planted.GOOGLE_KEY}", "GOOGLE_API_KEY", "?key="),
        (f'"SecretAccessKey": "{planted.AWS_SECRET_KEY}"', "AWS_SECRET_KEY", "SecretAccessKey"),
        (f"AWS_SECRET_ACCESS_KEY={planted.AWS_SECRET_KEY}", "AWS_SECRET_KEY", "AWS_SECRET"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "AUTH_HEADER", "Basic "),
        ("Cookie: session=9f8e7d6c5b4a; theme=dark", "AUTH_HEADER", "Cookie: "),
        ("--api-key=abc123def456", "SECRET", "--api-key="),
        ('{"client_secret": "s3cr3t-value"}', "SECRET", "client_secret"),
        ("https:\\/\\/bob:hunter22@example.com\\/", "URL_PASSWORD", "bob:"),
    ],
)
def test_generic_detectors_mask_the_value_and_keep_the_context(
    text: str, label: str, kept: str
) -> None:
    out = masked(text, SECRETS_ONLY)
    assert f"[{label}]" in out, out
    assert kept in out


def test_a_truncated_pem_key_is_masked_to_its_end() -> None:
    text = '{"key": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\nAbCd"} after'
    out = masked(text, SECRETS_ONLY)
    assert out == '{"key": "[PRIVATE_KEY]"} after'


def test_pem_keys_of_every_flavour() -> None:
    for kind in ("", "RSA ", "EC ", "OPENSSH ", "ENCRYPTED ", "DSA "):
        text = (
            f"-----BEGIN {kind}PRIVATE KEY-----\nAAAAB3NzaC1yc2E\n-----END {kind}PRIVATE KEY-----"
        )
        assert masked(text) == "[PRIVATE_KEY]"
    pgp = "-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQOYBF\n-----END PGP PRIVATE KEY BLOCK-----"
    assert masked(pgp) == "[PRIVATE_KEY]"


@pytest.mark.parametrize(
    "text",
    [
        "sk-learn-compatible-interfaces-and-more",  # no digit: prose, not a key
        "sk-1234",  # too short
        "disk-0123456789abcdefghijklmnopq",  # "sk-" inside a word
        "AIzaShort",
        "AKIAIOSFODNN7EXAMPLEXYZ",  # too long for an access key id
        "xAKIAIOSFODNN7EXAMPLE",
        "ghp_short",
        "xoxo-hugs-and-kisses-forever",
        "pk_live_51Hx9QmZt3Kx9Lm2Nv5Bw7Yc1",  # publishable: meant to be public
        "eyJhbGciOiJIUzI1NiJ9",  # a JWT header alone
        "the bearer of good news; bearer announcements",
        "Bearer token",
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBg\n-----END PUBLIC KEY-----",
        "-----BEGIN CERTIFICATE-----\nMIIBIjANBg\n-----END CERTIFICATE-----",
        "https://example.com:8443/path?page=2&sort=asc",
        "?keyword=foo&tokens=12",
        "commit 2fd4e1c67a2d28fced849ee1bb76e7391b93eb12",  # 40 hex, no AWS context
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",  # 40 base64, no AWS context
        "password: abc",  # too short to be a password worth masking
        "max_tokens: 1024, tokens: 12345678",
        "The token count was high.",
        "hmac-sha256:2944ae73b9e2a8fe3fc69960e819e4e3",  # our own hashes
    ],
)
def test_look_alikes_are_left_alone(text: str) -> None:
    assert labels(text) == [], masked(text)


# --- personal data ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "value"), [(label, v) for label, values in planted.PII.items() for v in values]
)
@pytest.mark.parametrize("template", ["{}", "call me at {}.", "<{}>", '"{}"', "x\n{}\ny"])
def test_every_kind_of_personal_data_is_found(label: str, value: str, template: str) -> None:
    out = masked(template.format(value))
    assert value not in out
    assert f"[{label}]" in out, out


def test_personal_data_is_left_in_full_mode_scanning() -> None:
    for values in planted.PII.values():
        for value in values:
            assert labels(value, SECRETS_ONLY) == []


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-15",
        "on 2024-01-15 at 14:30:16",
        "10.0.0.1 and 192.168.100.254",
        "version 1.2.3, v2.14.0",
        "pi is 3.14159265358979",
        "12345",
        "order 1234567890",  # a bare 10-digit id is not a phone number
        "ts 1767225600000000000",
        "123-456-7890",  # NANP area codes never start with 1
        "4111 1111 1111 1112",  # Luhn fails
        "1234 5678 9012 3456",  # no issuer starts with 1
        "4111 11111 111 1111",  # not grouped the way cards are printed
        "000-12-3456 666-12-3456 900-12-3456 123-00-6789 123-45-0000",  # never-issued SSNs
        "DE89 3704 0044 0532 0130 01",  # IBAN checksum fails
        "AB12CDEFGHIJKLMNOP",
        "user@localhost and @mention and foo@bar",
        "1 2 3 4 5 6 7 8 9 10 11 12",
        "7777777777777",
        "gpt-4o-2024-08-06",
    ],
)
def test_numbers_that_are_not_personal_data_are_left_alone(text: str) -> None:
    assert labels(text) == [], masked(text)


def test_several_numbers_in_one_run_are_each_found() -> None:
    out = masked("call 415-555-2671 415-555-9876 or card 4111 1111 1111 1111 2025")
    assert out == "call [PHONE] [PHONE] or card [CREDIT_CARD] 2025"


def test_digits_that_read_two_ways_are_masked_both_ways() -> None:
    """ "110 11 4111" is an SSN and "4111 1111 1111 1111" a card: mask the union."""
    out = masked("ref 110 11 4111 1111 1111 1111 end")
    assert out == "ref [CREDIT_CARD] end"


def test_overlapping_findings_of_different_detectors_are_masked_together() -> None:
    assert masked("passwd=r\x00+1111 0555 11 11111*") == "passwd=[SECRET]*"
    out = masked("ON11N111N11 11G 110 11 4111 1111 1111 1111 G")
    assert "4111" not in out and "1111 1111" not in out


def test_an_iban_followed_by_capitals_is_cut_at_its_checksum() -> None:
    assert masked("pay DE89 3704 0044 0532 0130 00 FOR RENT") == "pay [IBAN] FOR RENT"


def test_values_are_normalised_so_formatting_does_not_change_the_placeholder() -> None:
    found = SAFE.find("+1 415 555 2671, (415) 555-2671, JANE@Example.com, jane@example.com")
    values = [f.value for f in found]
    assert values[0] == "+14155552671"
    assert values[1] == "4155552671"
    assert values[2] == values[3] == "jane@example.com"


# --- custom patterns -------------------------------------------------------------------


def test_custom_patterns_are_masked_with_their_own_label() -> None:
    scanner = Scanner(custom=[("employee id", r"EMP-\d{6}")])
    out = masked("ticket by EMP-004211 for jane@example.com", scanner)
    assert out == "ticket by [EMPLOYEE_ID] for [EMAIL]"
    assert [f.kind for f in scanner.find("EMP-004211")] == [Kind.CUSTOM]


def test_custom_patterns_apply_even_without_personal_data_scanning() -> None:
    scanner = Scanner(pii=False, custom=[("project", r"Project [A-Z][a-z]+")])
    assert masked("Project Falcon launches", scanner) == "[PROJECT] launches"


def test_a_custom_pattern_overlapping_a_builtin_one_keeps_one_finding() -> None:
    scanner = Scanner(custom=[("corp mail", r"[a-z.]+@corp\.example")])
    found = scanner.find("mail ann@corp.example now")
    assert [f.label for f in found] == ["CORP_MAIL"]


def test_an_empty_custom_match_is_ignored() -> None:
    assert Scanner(custom=[("nothing", r"x*")]).find("abc") == []


def test_an_invalid_custom_pattern_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        compile_custom("broken", "(unclosed")


# --- hostile input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "555-123-4567 " * 60_000,
        "a.b@c.de " * 90_000,
        "1234567 " * 100_000,
        "1 " * 1_000_000,
        "password=abcdefgh " * 50_000,
        "a: b " * 200_000,
    ],
)
def test_text_dense_with_candidates_is_cut_off_not_scanned_forever(text: str) -> None:
    """The budget bounds the work per string; what it did not scan is removed, not kept."""
    found = SAFE.find(text)
    last = found[-1]
    assert last.label == UNSCANNED and last.kind is Kind.LIMIT
    assert last.end == len(text)
    out = masked(text)
    assert out.endswith("[UNSCANNED]")
    assert len(out) < len(text)


@pytest.mark.parametrize(
    ("text", "leftover"),
    [
        ("call 415-555-2671 now " * 60_000, r"\d{3}-\d{3}-\d{4}"),
        ("555-123-4567 " * 80_000, r"\d{3}-\d{3}-\d{4}"),
        ("mail a.b@c.de " * 90_000, r"[a-z.]+@[a-z.]+"),
        ("4111 1111 1111 1111 " * 50_000, r"4111 1111"),
    ],
)
def test_everything_before_the_cut_is_masked(text: str, leftover: str) -> None:
    """What the budget did scan is emitted, so every finding in it must have been kept."""
    out = masked(text)
    assert out.endswith("[UNSCANNED]")
    assert re.search(leftover, out) is None


@pytest.mark.parametrize(
    "text", ["x" * 2_000_000, "7" * 2_000_000, "a" * 2_000_000 + "@example.com", "sk-" * 500_000]
)
def test_long_runs_without_findings_are_scanned_whole(text: str) -> None:
    found = SAFE.find(text)
    assert all(f.label != UNSCANNED for f in found)


# --- properties ------------------------------------------------------------------------

# (text as planted, value that must vanish): shapes alone, and secrets in their context.
_PLANTED = [(v, v) for vs in (*planted.SECRETS.values(), *planted.PII.values()) for v in vs]
_PLANTED += planted.IN_CONTEXT
_FILLER = st.text(
    alphabet=st.sampled_from(list("abcdefghij klmnop XYZ,;!?\n\t\"'()[]{}<>:=/.-_@+&#0123456789")),
    max_size=40,
)
_SEPARATOR = st.sampled_from([" ", "\n", ", ", " (", ") ", '"', "\t", " | "])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_FILLER, _SEPARATOR, st.sampled_from(_PLANTED), _SEPARATOR), max_size=6))
def test_no_planted_value_survives_whatever_surrounds_it(
    parts: list[tuple[str, str, tuple[str, str], str]],
) -> None:
    text = "".join(f"{filler}{a}{planted_text}{b}" for filler, a, (planted_text, _), b in parts)
    out = masked(text)
    for _, _, (_, value), _ in parts:
        assert value not in out, (value, out)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(_FILLER, st.sampled_from([t for t, _ in _PLANTED])),
        max_size=12,
    ),
    _SEPARATOR,
)
def test_redacting_twice_changes_nothing(parts: list[str], separator: str) -> None:
    """Placeholders never match a detector, so re-redacting stored events is harmless."""
    text = separator.join(parts)
    once = SAFE.redact(text, lambda f: f"[{f.label}:{abs(hash(f.value)) % 10**8:08d}]")[0]
    assert SAFE.find(once) == []


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300))
def test_findings_are_ordered_disjoint_and_inside_the_text(text: str) -> None:
    found = Scanner(custom=[("digits", r"\d{3,}")]).find(text)
    last_end = 0
    for f in found:
        assert isinstance(f, Finding)
        assert last_end <= f.start < f.end <= len(text)
        last_end = f.end


def test_placeholder_labels_are_upper_case_words() -> None:
    text = " ".join(t for t, _ in _PLANTED)
    for f in SAFE.find(text):
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", f.label)
