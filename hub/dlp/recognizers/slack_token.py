"""Slack tokens: ``xoxb-`` (bot), ``xoxp-`` (user), ``xoxa-``/``xoxr-`` (app access and
refresh), ``xoxs-`` (session), ``xoxe-`` (rotating) — a prefix, a numeric team or user id
and dash-separated base62 parts — plus app-level tokens ``xapp-`` and incoming-webhook URLs,
which are secrets of the same kind."""

from __future__ import annotations

from hub.dlp.base import Pattern, Recognizer

_MIN_DISTINCT = 6


class SlackTokenRecognizer(Recognizer):
    entity = "SLACK_TOKEN"
    name = "slack_token"
    patterns = (
        Pattern(
            "token",
            r"xox[abprse]-(?<![A-Za-z0-9-].....)[0-9]{1,15}-[A-Za-z0-9-]{8,200}(?![A-Za-z0-9-])",
            0.9,
        ),
        Pattern(
            "app token",
            r"xapp-(?<![A-Za-z0-9-]xapp-)[0-9]-[A-Z0-9]{8,14}-[0-9]{8,16}-[a-f0-9]{32,80}(?![A-Za-z0-9-])",
            0.9,
        ),
        Pattern(
            "webhook",
            r"hooks\.slack\.com/(?:services|workflows)/T[A-Z0-9]{6,12}/[AB][A-Z0-9]{6,12}"
            r"/[A-Za-z0-9]{20,40}(?![A-Za-z0-9])",
            0.9,
        ),
    )
    context = ("slack", "token", "webhook", "bot")
    field_names = ("slacktoken", "slackbottoken", "slackwebhook", "slackwebhookurl")

    def validate(self, candidate: str, pattern: Pattern) -> float | None:
        tail = candidate.rsplit("-", 1)[-1].rsplit("/", 1)[-1]
        if len(set(tail)) < _MIN_DISTINCT:
            return None  # xoxb-123-XXXXXXXXXXXX placeholders
        return pattern.score
