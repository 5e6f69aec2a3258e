"""Google's OAuth2 token endpoint and Firebase Cloud Messaging's HTTP v1 API, on 127.0.0.1.

``POST /token`` takes a JWT-bearer grant (``grant_type`` and ``assertion``, form-encoded): the
assertion must be RS256-signed by the service account's key, with ``iss`` its e-mail, ``aud``
this URI, the firebase.messaging scope and at most an hour between ``iat`` and ``exp``; it answers
``{"access_token", "expires_in", "token_type"}`` or 400 ``invalid_grant``.

``POST /v1/projects/<project>/messages:send`` needs ``Authorization: Bearer <issued token>``
(else 401 UNAUTHENTICATED) and ``{"message": {"token", ...}}`` whose ``data`` values are all
strings (else 400 INVALID_ARGUMENT); a token in ``unregistered`` answers 404 NOT_FOUND with
errorCode UNREGISTERED; ``failures`` (a list of (status, Retry-After)) are answered first, one per
request, as Google does under load (429 RESOURCE_EXHAUSTED / 503 UNAVAILABLE). Success is
``{"name": "projects/<project>/messages/<id>"}``.
"""

from __future__ import annotations

import itertools
import json
import time

import jwt
from aiohttp import web

from tests.fakes._http import FakeHttpServer

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _error(status: int, state: str, message: str, code: str = "") -> web.Response:
    error: dict = {"code": status, "message": message, "status": state}
    if code:
        error["details"] = [
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}
        ]
    return web.json_response({"error": error}, status=status)


class FakeFcm(FakeHttpServer):
    """Records grants (claims, header) and accepted messages (project, message)."""

    def __init__(self, public_key_pem: str, *, client_email: str, project: str) -> None:
        super().__init__()
        self.public_key, self.client_email, self.project = public_key_pem, client_email, project
        self.grants: list[tuple[dict, dict]] = []
        self.accepted: list[dict] = []
        self.unregistered: set[str] = set()
        self.failures: list[tuple[int, str]] = []
        self.issued: set[str] = set()
        self._ids = itertools.count(1)
        self.app.router.add_post("/token", self._token)
        self.app.router.add_post("/v1/projects/{project}/messages:send", self._send)

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != GRANT_TYPE:
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        assertion = str(form.get("assertion", ""))
        try:
            claims = jwt.decode(
                assertion,
                self.public_key,
                algorithms=["RS256"],
                audience=self.token_uri,
                issuer=self.client_email,
                options={"require": ["iss", "aud", "iat", "exp", "scope"]},
            )
        except jwt.PyJWTError as exc:  # fmt: skip
            return web.json_response(
                {"error": "invalid_grant", "error_description": f"Invalid JWT: {exc}"}, status=400
            )
        if SCOPE not in claims["scope"].split() or not 0 < claims["exp"] - claims["iat"] <= 3600:
            return web.json_response(
                {"error": "invalid_scope", "error_description": "bad scope or lifetime"}, status=400
            )
        if abs(claims["iat"] - time.time()) > 300:
            return web.json_response(
                {"error": "invalid_grant", "error_description": "Invalid JWT: iat"}, status=400
            )
        self.grants.append((claims, jwt.get_unverified_header(assertion)))
        token = f"ya29.test-{next(self._ids)}"
        self.issued.add(token)
        return web.json_response(
            {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}
        )

    async def _send(self, request: web.Request) -> web.Response:
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if bearer not in self.issued:
            return _error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
        if request.match_info["project"] != self.project:
            return _error(403, "PERMISSION_DENIED", "The caller does not have permission")
        if self.failures:
            status, retry_after = self.failures.pop(0)
            state = "RESOURCE_EXHAUSTED" if status == 429 else "UNAVAILABLE"
            response = _error(status, state, "try again later",
                              "QUOTA_EXCEEDED" if status == 429 else "UNAVAILABLE")  # fmt: skip
            if retry_after:
                response.headers["Retry-After"] = retry_after
            return response
        try:
            message = (await request.json())["message"]
            token = message["token"]
        except (ValueError, KeyError, TypeError):
            return _error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        data = message.get("data", {})
        if not all(isinstance(v, str) for v in data.values()):
            return _error(400, "INVALID_ARGUMENT", "data values must be strings")
        if token in self.unregistered:
            return _error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
        self.accepted.append(json.loads(json.dumps(message)))
        return web.json_response({"name": f"projects/{self.project}/messages/{next(self._ids)}"})
