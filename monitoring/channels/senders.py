"""Send an alert's title and body to a channel: e-mail through Django, the rest through Apprise.

Addresses come from the rule's ``target`` (``env:NAME`` reads it from the environment); keys
(Telegram bot token, Twilio SID and token) only from settings, which read the environment. The
services' endpoints are settings too (``SLACK_WEBHOOK_BASE``, ``TELEGRAM_API_URL``,
``TWILIO_API_URL``), set on the Apprise plugin instance, so the same code talks to a local
server that speaks the service's API.
"""

from __future__ import annotations

import logging
import os
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.core.mail import send_mail

logger = logging.getLogger(__name__)


class DeliveryFailed(Exception):
    """A channel did not take the message (retried by the delivery task)."""


def resolve_target(target: str) -> str:
    """Return the target, reading ``env:NAME`` from the environment."""
    target = target.strip()
    if target.startswith("env:"):
        name = target[4:]
        value = os.environ.get(name, "")
        if not value:
            raise DeliveryFailed(f"environment variable {name} is not set")
        return value
    return target


def send(channel: str, target: str, title: str, body: str, *, data: dict | None = None) -> None:
    """Deliver ``title``/``body`` to ``channel`` at ``target``; raise ``DeliveryFailed``.

    ``data`` (the alert's id, kind, severity...) travels with a push, for the app to act on.
    """
    sender = SENDERS.get(channel)
    if sender is None:
        raise DeliveryFailed(f"unknown channel {channel!r}")
    address = resolve_target(target) if channel != "log" else target
    try:
        if channel == "push":
            _push(address, title, body, data)
        else:
            sender(address, title, body)
    except Exception as exc:
        if address == target.strip():
            raise
        # An env:NAME value never reaches the delivery's stored error or the logs: a rule
        # naming env:DATABASE_URL would otherwise show its password in the admin.
        raise DeliveryFailed(_redacted(f"{exc}", address, target.strip())) from None


def _redacted(text: str, secret: str, name: str) -> str:
    """Return ``text`` with ``secret`` and each of its comma-separated parts put as ``name``."""
    parts = sorted({secret, *(p.strip() for p in secret.split(","))}, key=len, reverse=True)
    for part in parts:
        if len(part) >= 3:
            text = text.replace(part, f"<{name}>")
    return text


def _log(target: str, title: str, body: str) -> None:
    logger.warning("alert", extra={"title": title, "body": body, "target": target})


def _email(target: str, title: str, body: str) -> None:
    recipients = [a.strip() for a in target.split(",") if a.strip()]
    if not recipients:
        raise DeliveryFailed("no e-mail address")
    try:
        send_mail(title, body, settings.ALERT_EMAIL_FROM, recipients, fail_silently=False)
    except Exception as exc:  # SMTP errors of every kind: retried
        raise DeliveryFailed(f"e-mail: {exc}") from exc


def _notify(url: str, title: str, body: str, **endpoint: str) -> None:
    """Build the Apprise plugin for ``url``, point it at ``endpoint``, and send."""
    import apprise  # ~0.3 s at import: loaded by the first delivery, not by every command

    plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        raise DeliveryFailed(f"not a valid {url.split(':', 1)[0]} address")
    for attribute, value in endpoint.items():
        setattr(plugin, attribute, value)
    if not plugin.notify(body=body, title=title):
        raise DeliveryFailed(f"{plugin.service_name} refused the message")


def _slack(target: str, title: str, body: str) -> None:
    # A webhook URL .../services/T000/B000/XXXX: its last three parts are the tokens.
    tokens = [p for p in urlsplit(target).path.split("/") if p][-3:]
    if len(tokens) != 3:
        raise DeliveryFailed("a Slack webhook URL ends in /services/T.../B.../...")
    url = "slack://{}/{}/{}/?footer=no&image=no".format(*tokens)
    _notify(url, title, body, webhook_url=settings.SLACK_WEBHOOK_BASE.rstrip("/"))


def _telegram(target: str, title: str, body: str) -> None:
    token = settings.TELEGRAM_BOT_TOKEN
    if not token:
        raise DeliveryFailed("TELEGRAM_BOT_TOKEN is not set")
    url = f"tgram://{quote(token, safe=':')}/{quote(target)}/?image=no&detect=no"
    _notify(url, title, body, notify_url=settings.TELEGRAM_API_URL.rstrip("/") + "/bot")


def _sms(target: str, title: str, body: str) -> None:
    sid, token, sender = (
        settings.TWILIO_ACCOUNT_SID,
        settings.TWILIO_AUTH_TOKEN,
        settings.TWILIO_FROM_NUMBER,
    )
    if not (sid and token and sender):
        raise DeliveryFailed("SMS needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM_NUMBER")
    url = f"twilio://{quote(sid)}:{quote(token)}@{quote(sender)}/{quote(target)}"
    base = settings.TWILIO_API_URL.rstrip("/")
    _notify(
        url,
        title,
        body,
        notify_sms_url=base + "/2010-04-01/Accounts/{sid}/Messages.json",
    )


def _webhook(target: str, title: str, body: str) -> None:
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise DeliveryFailed("a webhook target is an http(s) URL")
    scheme = "jsons" if parts.scheme == "https" else "json"
    url = f"{scheme}://{parts.netloc}{parts.path or '/'}"
    if parts.query:
        url += f"?{parts.query}"
    _notify(url, title, body)


def _push(target: str, title: str, body: str, data: dict | None = None) -> None:
    """Push to the active devices of the users named in ``target`` (comma-separated): iPhones
    through APNs, Android phones through FCM.

    Fails (for a retry) when no device got it; a platform that failed beside one that delivered
    is logged, as resending would repeat the alert on the phones that have it.
    """
    from monitoring.channels.apns import apns_send
    from monitoring.channels.fcm import fcm_send
    from monitoring.models import PushDevice

    names = [n.strip() for n in target.split(",") if n.strip()]
    devices = list(PushDevice.objects.filter(user__username__in=names, active=True))
    if not devices:
        raise DeliveryFailed(f"no active push device registered for {', '.join(names) or '-'}")
    platforms = (("ios", apns_send), ("android", fcm_send))
    sent, errors = 0, []
    for platform, platform_send in platforms:
        mine = [device for device in devices if device.platform == platform]
        if not mine:
            continue
        try:
            counts = platform_send(mine, title, body, data)
        except DeliveryFailed as exc:
            errors.append(f"{platform}: {exc}")
            continue
        sent += counts["sent"]
    if not sent:
        raise DeliveryFailed("; ".join(errors) or "every device's token was unregistered")
    for error in errors:
        logger.error("push alert not delivered to every platform", extra={"error": error})


SENDERS = {
    "log": _log,
    "email": _email,
    "slack": _slack,
    "telegram": _telegram,
    "sms": _sms,
    "webhook": _webhook,
    "push": _push,
}
