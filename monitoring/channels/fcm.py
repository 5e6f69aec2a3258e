"""Push alerts to Android phones through Firebase Cloud Messaging's HTTP v1 API.

Auth is OAuth2 with a Google service account: a JWT grant (RS256, signed with the account's
private key; ``iss`` the account's e-mail, ``scope`` firebase.messaging, ``aud`` the account's
``token_uri``, valid for an hour) is posted to ``token_uri`` for an access token, kept until a
minute before it expires. Each device then gets ``POST {FCM_API_URL}/v1/projects/<project>/
messages:send`` with ``{"message": {"token", "notification": {"title", "body"}, "data",
"android": {"priority": "high"}}}``. 200 is delivered; 404 UNREGISTERED (the app was removed) and
403 SENDER_ID_MISMATCH (a token of another project) deactivate the device; 401 fetches a new
access token once; 429 and 5xx are retried after ``Retry-After`` (or a short back-off), up to
``MAX_ATTEMPTS``; anything else fails that device. The service account comes from the
environment only (``FCM_SERVICE_ACCOUNT_FILE``, a path, or ``FCM_SERVICE_ACCOUNT_JSON``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import httpx
import jwt
from django.conf import settings

from monitoring.channels.senders import DeliveryFailed

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GRANT_LIFETIME = 3600  # seconds: the longest Google accepts
TOKEN_MARGIN = 60  # seconds before expiry a cached access token is replaced
MAX_ATTEMPTS = 4  # per device, for 429/5xx
MAX_RETRY_WAIT = 10.0  # seconds: a longer Retry-After fails the device (alerts_tick retries)
GONE_CODES = {"UNREGISTERED", "SENDER_ID_MISMATCH"}
_REQUIRED = ("client_email", "private_key", "token_uri")


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """The parts of a Google service-account key FCM needs."""

    client_email: str
    private_key: str
    private_key_id: str
    token_uri: str
    project_id: str


def service_account_parse(text: str) -> ServiceAccount:
    """Return the service account in the JSON ``text``; DeliveryFailed names what is missing."""
    try:
        info = json.loads(text)
    except ValueError as exc:
        raise DeliveryFailed(f"FCM service account is not JSON: {exc}") from None
    if not isinstance(info, dict):
        raise DeliveryFailed("FCM service account is not a JSON object")
    missing = [key for key in _REQUIRED if not isinstance(info.get(key), str) or not info[key]]
    project = settings.FCM_PROJECT_ID or info.get("project_id") or ""
    if not project:
        missing.append("project_id")
    if missing:
        raise DeliveryFailed(f"FCM service account lacks {', '.join(missing)}")
    return ServiceAccount(
        info["client_email"],
        info["private_key"],
        str(info.get("private_key_id") or ""),
        info["token_uri"],
        str(project),
    )


def service_account_load() -> ServiceAccount:
    """Read the service account from ``FCM_SERVICE_ACCOUNT_JSON`` or ``_FILE``."""
    if settings.FCM_SERVICE_ACCOUNT_JSON:
        return service_account_parse(settings.FCM_SERVICE_ACCOUNT_JSON)
    if settings.FCM_SERVICE_ACCOUNT_FILE:
        try:
            with open(settings.FCM_SERVICE_ACCOUNT_FILE, encoding="utf-8") as handle:
                return service_account_parse(handle.read())
        except OSError as exc:
            raise DeliveryFailed(f"FCM service account file: {exc}") from None
    raise DeliveryFailed("FCM_SERVICE_ACCOUNT_FILE or FCM_SERVICE_ACCOUNT_JSON is not set")


def grant_assertion(account: ServiceAccount, *, now: float) -> str:
    """Return the signed JWT that asks ``token_uri`` for an FCM access token."""
    issued = int(now)
    claims = {
        "iss": account.client_email,
        "scope": SCOPE,
        "aud": account.token_uri,
        "iat": issued,
        "exp": issued + GRANT_LIFETIME,
    }
    headers = {"kid": account.private_key_id} if account.private_key_id else None
    try:
        return jwt.encode(claims, account.private_key, algorithm="RS256", headers=headers)
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        raise DeliveryFailed(f"FCM service account key cannot sign: {exc}") from None


class AccessTokens:
    """Access tokens per service account, fetched by JWT grant and reused until near expiry."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, client: httpx.Client, account: ServiceAccount, *, fresh: bool = False) -> str:
        """Return a valid access token for ``account`` (a new one when ``fresh``)."""
        key = (account.client_email, account.token_uri)
        with self._lock:
            now = self.clock()
            cached = self._tokens.get(key)
            if cached is not None and not fresh and cached[1] - TOKEN_MARGIN > now:
                return cached[0]
            token, lifetime = self._fetch(client, account, now)
            self._tokens[key] = (token, now + lifetime)
            return token

    def forget(self) -> None:
        """Drop every cached token."""
        with self._lock:
            self._tokens.clear()

    @staticmethod
    def _fetch(client: httpx.Client, account: ServiceAccount, now: float) -> tuple[str, float]:
        form = {"grant_type": GRANT_TYPE, "assertion": grant_assertion(account, now=now)}
        try:
            reply = client.post(account.token_uri, data=form)
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"FCM token endpoint: {type(exc).__name__}: {exc}") from None
        try:
            body = reply.json()
        except ValueError:
            body = {}
        token = body.get("access_token") if isinstance(body, dict) else None
        if reply.status_code != 200 or not isinstance(token, str) or not token:
            if isinstance(body, dict) and body:
                why = f"{body.get('error', '')}: {body.get('error_description', '')}"
            else:
                why = reply.text
            raise DeliveryFailed(
                f"FCM token endpoint refused the grant: {reply.status_code} {why[:200]}"
            )
        lifetime = body.get("expires_in", GRANT_LIFETIME)
        return token, float(lifetime) if isinstance(lifetime, int | float) else GRANT_LIFETIME


TOKENS = AccessTokens()


def fcm_message(token: str, title: str, body: str, data: Mapping[str, object] | None) -> dict:
    """Return the v1 ``messages:send`` body for one device (data values as strings)."""
    message: dict = {
        "token": token,
        "notification": {"title": title[:200], "body": body[:1500]},
        "android": {"priority": "high"},
    }
    if data:
        message["data"] = {str(k): "" if v is None else str(v) for k, v in data.items()}
    return {"message": message}


def fcm_send(
    devices: Iterable,
    title: str,
    body: str,
    data: Mapping[str, object] | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, int]:
    """Send one alert to each Android device; return the counts (sent, gone, failed).

    Raise DeliveryFailed when no device got it and one failed (the delivery is retried).
    """
    account = service_account_load()
    url = f"{settings.FCM_API_URL.rstrip('/')}/v1/projects/{account.project_id}/messages:send"
    counts = {"sent": 0, "gone": 0, "failed": 0}
    errors: list[str] = []
    with httpx.Client(timeout=10) as client:
        sender = _Sender(client, account, url, sleep)
        for device in devices:
            outcome, error = sender.send(fcm_message(device.token, title, body, data))
            counts[outcome] += 1
            if outcome == "gone":
                device.active = False
                device.save(update_fields=["active", "updated_at"])
            elif error:
                errors.append(error)
    if counts["failed"] and not counts["sent"]:
        raise DeliveryFailed(f"FCM refused: {'; '.join(errors)[:500]}")
    return counts


@dataclass(slots=True)
class _Sender:
    client: httpx.Client
    account: ServiceAccount
    url: str
    sleep: Callable[[float], None]

    def send(self, message: dict) -> tuple[str, str]:
        """Post one message with retries; return (sent | gone | failed, error)."""
        refreshed = False
        for attempt in range(MAX_ATTEMPTS):
            token = TOKENS.get(self.client, self.account, fresh=refreshed)
            try:
                reply = self.client.post(
                    self.url, json=message, headers={"authorization": f"Bearer {token}"}
                )
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
                wait = _backoff(attempt)
            else:
                if reply.status_code == 200:
                    return "sent", ""
                status, code = _error(reply)
                error = f"{reply.status_code} {code or status}"
                if code in GONE_CODES:
                    return "gone", error
                if reply.status_code == 401 and not refreshed:
                    refreshed = True  # the access token was revoked or expired early
                    continue
                if reply.status_code != 429 and reply.status_code < 500:
                    return "failed", error
                wait = _retry_after(reply, attempt)
            if wait is None or attempt == MAX_ATTEMPTS - 1:
                return "failed", error
            self.sleep(wait)
        return "failed", error


def _error(reply: httpx.Response) -> tuple[str, str]:
    """Return (status, FCM error code) of an error reply."""
    try:
        error = reply.json().get("error") or {}
    except (ValueError, AttributeError):
        return "", ""
    if not isinstance(error, dict):
        return "", ""
    code = ""
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("errorCode"):
            code = str(detail["errorCode"])
    return str(error.get("status", "")), code


def _backoff(attempt: int) -> float:
    return min(0.5 * 2**attempt, MAX_RETRY_WAIT)


def _retry_after(reply: httpx.Response, attempt: int) -> float | None:
    """Return the wait before retrying; None when the server asks for longer than we wait."""
    header = reply.headers.get("retry-after", "")
    try:
        wait = float(header) if header else _backoff(attempt)
    except ValueError:
        wait = _backoff(attempt)
    return None if wait > MAX_RETRY_WAIT else max(wait, 0.0)
