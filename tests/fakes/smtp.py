"""A local SMTP server (RFC 5321, the commands Django's SMTP backend sends) that keeps mail.

``FakeSMTPServer().start()`` listens on 127.0.0.1 (a free port, ``.port``); each accepted
message lands in ``.messages`` as ``{"from": ..., "to": [...], "data": ...}``. Recipients in
``refuse`` are answered 550, as a real server answers an unknown mailbox.
"""

from __future__ import annotations

import asyncio


class FakeSMTPServer:
    """Speak enough SMTP for ``django.core.mail.backends.smtp.EmailBackend``."""

    def __init__(self, *, refuse: tuple[str, ...] = ()) -> None:
        self.messages: list[dict] = []
        self.refuse = set(refuse)
        self.port = 0
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def reply(line: str) -> None:
            writer.write(f"{line}\r\n".encode())

        reply("220 fake.smtp ESMTP")
        sender, recipients = "", []
        try:
            while line := await reader.readline():
                command = line.decode("utf-8", "replace").strip()
                verb = command[:4].upper()
                if verb in ("EHLO", "HELO"):
                    reply("250 fake.smtp")
                elif verb == "MAIL":
                    sender, recipients = command.split(":", 1)[1].strip(), []
                    reply("250 OK")
                elif verb == "RCPT":
                    address = command.split(":", 1)[1].strip().strip("<>")
                    if address in self.refuse:
                        reply("550 no such mailbox")
                    else:
                        recipients.append(address)
                        reply("250 OK")
                elif verb == "DATA":
                    reply("354 end with <CRLF>.<CRLF>")
                    data = []
                    while (chunk := await reader.readline()) not in (b".\r\n", b""):
                        data.append(chunk.decode("utf-8", "replace"))
                    self.messages.append({"from": sender, "to": recipients, "data": "".join(data)})
                    reply("250 OK queued")
                elif verb == "QUIT":
                    reply("221 bye")
                    break
                else:  # RSET, NOOP
                    reply("250 OK")
                await writer.drain()
        finally:
            writer.close()
