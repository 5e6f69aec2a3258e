"""A local APNs provider API over HTTP/2 (h2c with prior knowledge, on 127.0.0.1).

``POST /3/device/<token>`` with ``authorization: bearer <ES256 JWT>`` (verified against the
public key given), ``apns-topic`` and a JSON body with ``aps``: 200 with ``apns-id``; unknown
tokens in ``gone`` answer 410 ``{"reason": "Unregistered"}``; a bad or missing token 403
``{"reason": "InvalidProviderToken"}``; a missing topic 400 ``{"reason": "MissingTopic"}``.
HTTP/1.1 is not spoken (APNs does not either).
"""

from __future__ import annotations

import asyncio
import json
import uuid

import h2.config
import h2.connection
import h2.events
import jwt


class FakeApns:
    """Records every accepted notification as (token, headers, payload)."""

    def __init__(self, public_key_pem: str, *, team_id: str, key_id: str, topic: str) -> None:
        self.public_key, self.team_id, self.key_id, self.topic = (
            public_key_pem,
            team_id,
            key_id,
            topic,
        )
        self.gone: set[str] = set()
        self.accepted: list[tuple[str, dict, dict]] = []
        self.url = ""
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        streams: dict[int, dict] = {}
        try:
            while data := await reader.read(65535):
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        headers = {k.decode(): v.decode() for k, v in event.headers}
                        streams[event.stream_id] = {"headers": headers, "body": b""}
                    elif isinstance(event, h2.events.DataReceived):
                        streams[event.stream_id]["body"] += event.data
                        conn.acknowledge_received_data(len(event.data), event.stream_id)
                    elif isinstance(event, h2.events.StreamEnded):
                        self._respond(conn, event.stream_id, streams.pop(event.stream_id))
                writer.write(conn.data_to_send())
                await writer.drain()
        finally:
            writer.close()

    def _respond(self, conn, stream_id: int, request: dict) -> None:
        status, body = self._answer(request["headers"], request["body"])
        apns_id = str(uuid.uuid4())
        payload = json.dumps(body).encode() if body else b""
        conn.send_headers(
            stream_id, [(":status", str(status)), ("apns-id", apns_id)], end_stream=not payload
        )
        if payload:
            conn.send_data(stream_id, payload, end_stream=True)

    def _answer(self, headers: dict, raw: bytes) -> tuple[int, dict | None]:
        path = headers.get(":path", "")
        if headers.get(":method") != "POST" or not path.startswith("/3/device/"):
            return 404, {"reason": "BadPath"}
        bearer = headers.get("authorization", "").removeprefix("bearer ")
        try:
            claims = jwt.decode(bearer, self.public_key, algorithms=["ES256"])
            kid = jwt.get_unverified_header(bearer).get("kid")
        except jwt.PyJWTError:
            return 403, {"reason": "InvalidProviderToken"}
        if claims.get("iss") != self.team_id or kid != self.key_id:
            return 403, {"reason": "InvalidProviderToken"}
        if headers.get("apns-topic") != self.topic:
            reason = "MissingTopic" if "apns-topic" not in headers else "TopicDisallowed"
            return 400, {"reason": reason}
        token = path.removeprefix("/3/device/")
        if token in self.gone:
            return 410, {"reason": "Unregistered", "timestamp": 0}
        try:
            payload = json.loads(raw)
        except ValueError:
            return 400, {"reason": "PayloadEmpty"}
        if "aps" not in payload:
            return 400, {"reason": "PayloadEmpty"}
        self.accepted.append((token, headers, payload))
        return 200, None
