"""Local servers speaking the HTTP APIs alerts are delivered to, on one aiohttp app.

- Slack incoming webhook: ``POST /services/T.../B.../X...`` JSON ``{"text"|"blocks"|...}`` ->
  ``200 ok`` (text/plain), as hooks.slack.com answers.
- Telegram Bot API: ``POST /bot<token>/<method>`` (``sendMessage``, ``getMe``, ``getUpdates``,
  ``deleteWebhook``, ...) -> ``{"ok": true, "result": ...}``; a wrong token answers 401
  ``{"ok": false, "error_code": 401, "description": "Unauthorized"}``.
- Twilio Messages: ``POST /2010-04-01/Accounts/<sid>/Messages.json`` form-encoded ``To``,
  ``From``, ``Body`` with HTTP basic auth ``sid:token`` -> 201 with the message resource.
- A generic webhook sink: ``POST /hook/...`` JSON -> 200.

``fail_next`` makes the next N deliveries of any service answer 500 (retry tests).
"""

from __future__ import annotations

import base64
import itertools
import json
import time

from aiohttp import web

from tests.fakes._http import FakeHttpServer


class FakeAlertServices(FakeHttpServer):
    """Slack, Telegram, Twilio and a webhook sink; every accepted message is recorded."""

    def __init__(self, *, telegram_token: str = "123:TEST", twilio: tuple[str, str] = ("", "")):
        super().__init__()
        self.telegram_token = telegram_token
        self.twilio_sid, self.twilio_token = twilio
        self.slack: list[dict] = []
        self.telegram: list[dict] = []  # sendMessage payloads
        self.sms: list[dict] = []
        self.webhook: list[dict] = []
        self.received_at: list[float] = []  # time.monotonic() of each accepted message
        self.updates: list[dict] = []  # queued Telegram updates for getUpdates
        self.fail_next = 0
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self.app.router.add_post("/services/{a}/{b}/{c}", self._slack)
        self.app.router.add_route("*", "/bot{token}/{method}", self._telegram)
        self.app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._twilio)
        self.app.router.add_post("/hook/{tail:.*}", self._webhook)

    def _failing(self) -> bool:
        if self.fail_next > 0:
            self.fail_next -= 1
            return True
        return False

    def _accept(self, box: list[dict], payload: dict) -> None:
        box.append(payload)
        self.received_at.append(time.monotonic())

    async def _slack(self, request: web.Request) -> web.Response:
        if self._failing():
            return web.Response(status=500, text="internal_error")
        try:
            payload = await request.json()
        except json.JSONDecodeError:
            return web.Response(status=400, text="invalid_payload")
        if not any(k in payload for k in ("text", "blocks", "attachments")):
            return web.Response(status=400, text="no_text")
        self._accept(self.slack, payload)
        return web.Response(text="ok")

    def queue_message(self, chat_id: int, text: str) -> None:
        """Queue an incoming chat message for ``getUpdates``."""
        self.updates.append(
            {
                "update_id": next(self._update_ids),
                "message": {
                    "message_id": next(self._message_ids),
                    "date": int(time.time()),
                    "chat": {"id": chat_id, "type": "private"},
                    "from": {"id": chat_id, "is_bot": False, "first_name": "Op"},
                    "text": text,
                    **(
                        {
                            "entities": [
                                {"type": "bot_command", "offset": 0, "length": len(text.split()[0])}
                            ]
                        }
                        if text.startswith("/")
                        else {}
                    ),
                },
            }
        )

    async def _telegram(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.telegram_token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        payload = await _payload(request)
        method = request.match_info["method"]
        if method == "getMe":
            return _ok({"id": 123, "is_bot": True, "first_name": "RRR", "username": "rrr_bot"})
        if method in ("deleteWebhook", "setMyCommands", "close", "logOut"):
            return _ok(True)
        if method == "getUpdates":
            offset = int(payload.get("offset") or 0)
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
            return _ok(list(self.updates))
        if method == "sendMessage":
            if self._failing():
                return web.json_response(
                    {"ok": False, "error_code": 500, "description": "Internal"}, status=500
                )
            if not payload.get("chat_id") or not payload.get("text"):
                return web.json_response(
                    {"ok": False, "error_code": 400, "description": "Bad Request"}, status=400
                )
            self._accept(self.telegram, payload)
            return _ok(
                {
                    "message_id": next(self._message_ids),
                    "date": int(time.time()),
                    "chat": {"id": int(payload["chat_id"]), "type": "private"},
                    "text": payload["text"],
                }
            )
        return web.json_response(
            {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
        )

    async def _twilio(self, request: web.Request) -> web.Response:
        expected = base64.b64encode(f"{self.twilio_sid}:{self.twilio_token}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}" or (
            request.match_info["sid"] != self.twilio_sid
        ):
            return web.json_response(
                {"code": 20003, "message": "Authenticate", "status": 401}, status=401
            )
        if self._failing():
            return web.json_response(
                {"code": 20500, "message": "Internal", "status": 500}, status=500
            )
        form = dict(await request.post())
        if not form.get("To") or not form.get("Body"):
            return web.json_response(
                {"code": 21604, "message": "A 'To' phone number is required.", "status": 400},
                status=400,
            )
        self._accept(self.sms, form)
        return web.json_response(
            {
                "sid": f"SM{len(self.sms):032x}",
                "status": "queued",
                "to": form["To"],
                "from": form.get("From"),
                "body": form["Body"],
            },
            status=201,
        )

    async def _webhook(self, request: web.Request) -> web.Response:
        if self._failing():
            return web.Response(status=500)
        self._accept(self.webhook, {"path": request.path, **(await request.json())})
        return web.json_response({"received": True})


async def _payload(request: web.Request) -> dict:
    if request.content_type == "application/json":
        return await request.json()
    if request.can_read_body:
        return dict(await request.post())
    return dict(request.query)


def _ok(result) -> web.Response:
    return web.json_response({"ok": True, "result": result})
