"""Values that must never leave the sensor, one or more per detector, and look-alikes that must.

Every secret here is fake but has the exact shape of the real thing (prefix,
length, alphabet), so a detector that finds these finds real ones. The security
tests plant them in traffic and grep everything the sensor wrote.
"""

from __future__ import annotations

OPENAI_PROJECT_KEY = "sk-proj-Zq3vN8xT2mK9pL4wR7sY1uB6cE0dF5gH8jK2lM4nP6qR8sT0vX2yZ4aB6cD8eF0gH"
OPENAI_LEGACY_KEY = "sk-4f9KcT2xLm8QpR3sV7wY1zA5bD9eG2hJ6kN0oP4qS8tU3vX"
ANTHROPIC_KEY = "sk-ant-api03-Xk2mP9qR4sT7vW1yZ3bC6dF8gH0jK5lN2pQ4rS6tU8vW0xY2zA4bC6dE8fG0hJ2kL-AA"
GOOGLE_KEY = "AIzaSyD4kP9mQ2rS7tV1wX3yZ5bC8dF0gH2jK6l"
AWS_ACCESS_KEY = "AKIAZ7QH4N2XK9P3M5TB"
AWS_SESSION_KEY = "ASIAY34FZKBOKMUTVV7A"
AWS_SECRET_KEY = "q8Zt3Kx9Lm2Nv5Bw7Yc1Rd4Fg6Hj0Pk8Sx2Tz4Ua"
GITHUB_TOKEN = "ghp_R4nD0mT0k3nV4lu3F0rT3st1ngPurp0s3sXyZ"
GITHUB_OAUTH = "gho_16C7e42F292c6912E7710c838347Ae178B4a00"
GITHUB_PAT = (
    "github_pat_11ABCDEFG0aBcDeFgHiJkL_mNoPqRsTuVwXyZ0123456789aBcDeFgHiJkLmNoPqRsTuVwXyZ01"
)
SLACK_TOKEN = "xoxb-2748392010-4829103829301-Qm8Zt3Kx9Lm2Nv5Bw7Yc1Rd4"
STRIPE_LIVE = "sk_live_51Hx9QmZt3Kx9Lm2Nv5Bw7Yc1Rd4Fg6Hj0"
STRIPE_RESTRICTED = "rk_live_51Hx9QmZt3Kx9Lm2Nv5Bw7Yc1Rd4Fg6Hj0"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwia"
    "WF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
BEARER_OPAQUE = "tok_7Hq2Zx9LmN4vB8wY1cR5"
URL_PASSWORD = "Tr0ub4dor-and-3"
QUERY_TOKEN = "v8Ks2Lq9Zx4Nm7Bt"
ASSIGNED_PASSWORD = "correct-h0rse-battery"
PEM_BODY = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0"
PRIVATE_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    f"{PEM_BODY}\n"
    "/vEJdSXFZ2TZ1TZrLTqsB1nIBo+PsEvaZgg0VgCQbkRrXX2XyGoDJsBgTzsmvyBjTq==\n"
    "-----END RSA PRIVATE KEY-----"
)

EMAIL = "jane.doe+ai@example-mail.co.uk"
PHONE_E164 = "+14155552671"
PHONE_INTL = "+44 20 7946 0958"
PHONE_US = "(415) 555-2671"
PHONE_NATIONAL = "06 12 34 56 78"
CARD_VISA = "4111 1111 1111 1111"
CARD_MASTERCARD = "5500-0000-0000-0004"
CARD_AMEX = "378282246310005"
IBAN_DE = "DE89 3704 0044 0532 0130 00"
IBAN_GB = "GB82WEST12345698765432"
SSN = "123-45-6789"

# Every planted secret, as it would appear in text (the value itself is what must vanish).
SECRETS = {
    "OPENAI_KEY": [OPENAI_PROJECT_KEY, OPENAI_LEGACY_KEY],
    "ANTHROPIC_KEY": [ANTHROPIC_KEY],
    "GOOGLE_API_KEY": [GOOGLE_KEY],
    "AWS_ACCESS_KEY": [AWS_ACCESS_KEY, AWS_SESSION_KEY],
    "GITHUB_TOKEN": [GITHUB_TOKEN, GITHUB_OAUTH, GITHUB_PAT],
    "SLACK_TOKEN": [SLACK_TOKEN],
    "STRIPE_KEY": [STRIPE_LIVE, STRIPE_RESTRICTED],
    "JWT": [JWT],
}
PII = {
    "EMAIL": [EMAIL],
    "PHONE": [PHONE_E164, PHONE_INTL, PHONE_US, PHONE_NATIONAL],
    "CREDIT_CARD": [CARD_VISA, CARD_MASTERCARD, CARD_AMEX],
    "IBAN": [IBAN_DE, IBAN_GB],
    "US_SSN": [SSN],
}
# The personal data the end-to-end tests plant in traffic (one of each kind and format).
PII_IN_TRAFFIC = [
    EMAIL,
    PHONE_INTL,
    PHONE_US,
    PHONE_NATIONAL,
    CARD_VISA,
    CARD_MASTERCARD,
    IBAN_DE,
    IBAN_GB,
    SSN,
]
# Secrets recognised by their context rather than their shape: (text, value that must vanish).
IN_CONTEXT = [
    (f"aws_secret_access_key = {AWS_SECRET_KEY}", AWS_SECRET_KEY),
    (f"Authorization: Bearer {BEARER_OPAQUE}", BEARER_OPAQUE),
    (f"postgres://admin:{URL_PASSWORD}@db.internal:5432/app", URL_PASSWORD),
    (f"https://api.example.com/v1/x?token={QUERY_TOKEN}&page=2", QUERY_TOKEN),
    (f"password={ASSIGNED_PASSWORD}", ASSIGNED_PASSWORD),
    (PRIVATE_KEY, PEM_BODY),
]


def all_planted() -> list[str]:
    """Every value the end-to-end tests plant and then look for."""
    values = [v for vs in SECRETS.values() for v in vs] + [v for vs in PII.values() for v in vs]
    return values + [value for _, value in IN_CONTEXT]
