"""Stripe secret keys: live secret ``sk_live_`` and restricted ``rk_live_`` keys, and
webhook signing secrets ``whsec_``. Test-mode keys (``sk_test_``) reach only test data;
they are reported at 0.3 so a strict policy can still catch them while the default 0.5
threshold does not. Publishable keys (``pk_``) are public by design and not matched."""

from __future__ import annotations

from hub.dlp.base import Pattern, Recognizer

_MIN_DISTINCT = 8


class StripeKeyRecognizer(Recognizer):
    entity = "STRIPE_KEY"
    name = "stripe_key"
    patterns = (
        Pattern(
            "live key",
            r"(?:sk|rk)_live_(?<![A-Za-z0-9_].{8})[A-Za-z0-9]{24,247}(?![A-Za-z0-9_])",
            0.95,
            ceiling=0.95,
        ),
        Pattern(
            "test key",
            r"(?:sk|rk)_test_(?<![A-Za-z0-9_].{8})[A-Za-z0-9]{24,247}(?![A-Za-z0-9_])",
            0.3,
            ceiling=0.3,
        ),
        Pattern(
            "webhook secret",
            r"whsec_(?<![A-Za-z0-9_]whsec_)[A-Za-z0-9]{32,64}(?![A-Za-z0-9_])",
            0.8,
            ceiling=0.8,
        ),
    )
    context = ("stripe", "secret", "api key", "apikey")
    field_names = ("stripekey", "stripesecretkey", "stripeapikey", "stripewebhooksecret")

    def validate(self, candidate: str, pattern: Pattern) -> float | None:
        secret = candidate.rsplit("_", 1)[1]
        if len(set(secret)) < _MIN_DISTINCT:
            return None  # sk_live_xxxxxxxx… placeholders
        return pattern.score
