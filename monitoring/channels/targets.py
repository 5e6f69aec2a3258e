"""Check an alert rule's address for its channel when the rule is saved.

A malformed address used to be stored as typed and fail only when the first alert (a kill
switch, at night) could not go out; the admin now refuses it with the reason. ``env:NAME``
is checked for its form only: its value is read when sending.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

# Where alerts are raised from (monitoring.alerts.alert_raise callers); "*" is any.
SOURCES = ("*", "risk", "trading", "marketdata", "jobs", "ml", "system")
E164 = re.compile(r"\+[1-9]\d{6,14}")
TELEGRAM_CHAT = re.compile(r"-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def target_problem(channel: str, target: str) -> str | None:
    """Return why ``target`` is no address for ``channel``, or None when it is one."""
    target = target.strip()
    if channel == "log":
        return None
    if not target:
        return f"a {channel} rule needs a target"
    if target.startswith("env:"):
        if ENV_NAME.fullmatch(target[4:]):
            return None
        return "env:NAME takes the name of an environment variable"
    check = _CHECKS.get(channel)
    return check(target) if check else f"unknown channel {channel!r}"


def _email(target: str) -> str | None:
    addresses = [a.strip() for a in target.split(",")]
    for address in addresses:
        try:
            validate_email(address)
        except ValidationError:
            return f"not an e-mail address: {address!r} (separate several with commas)"
    return None


def _http_url(target: str) -> tuple[str, list[str]] | str:
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "an http(s) URL"
    return parts.scheme, [p for p in parts.path.split("/") if p]


def _slack(target: str) -> str | None:
    url = _http_url(target)
    if isinstance(url, str) or len(url[1]) < 3:
        return "a Slack webhook URL (https://hooks.slack.com/services/T.../B.../...)"
    return None


def _webhook(target: str) -> str | None:
    url = _http_url(target)
    return f"a webhook target is {url}" if isinstance(url, str) else None


def _telegram(target: str) -> str | None:
    if TELEGRAM_CHAT.fullmatch(target):
        return None
    return "a Telegram chat id (a number, negative for groups) or @channelname"


def _sms(target: str) -> str | None:
    if E164.fullmatch(target):
        return None
    return "a phone number in E.164 form (+ and 7 to 15 digits, e.g. +15551234567)"


def _push(target: str) -> str | None:
    from django.contrib.auth import get_user_model

    names = [n.strip() for n in target.split(",") if n.strip()]
    known = set(
        get_user_model().objects.filter(username__in=names).values_list("username", flat=True)
    )
    unknown = [n for n in names if n not in known]
    if not names or unknown:
        return f"push goes to users by username; no user named {', '.join(unknown) or '-'}"
    return None


_CHECKS = {
    "email": _email,
    "slack": _slack,
    "webhook": _webhook,
    "telegram": _telegram,
    "sms": _sms,
    "push": _push,
}
