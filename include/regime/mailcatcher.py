"""A local SMTP server on 127.0.0.1 that keeps every message it receives as an .eml file.

Used by `make demo` (so the demo's alert mail can be read without a real mail server) and by the tests.
"""

from __future__ import annotations

import email
import email.policy
import threading
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller


class _Handler:
    def __init__(self, folder: Path | None):
        self.folder = folder
        self.messages: list[EmailMessage] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(msg)
            if self.folder is not None:
                self.folder.mkdir(parents=True, exist_ok=True)
                n = len(list(self.folder.glob("*.eml"))) + 1
                (self.folder / f"{n:04d}.eml").write_bytes(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


class MailCatcher:
    """`with MailCatcher() as mc:` serves SMTP on 127.0.0.1:`mc.port`; `mc.messages` holds what arrived."""

    def __init__(self, folder: Path | None = None, port: int = 0, handler=None, timeout: float = 10):
        """`handler`: an aiosmtpd handler to serve instead of the catcher's own (tests script SMTP faults with one;
        `messages` then reads the catcher's own, empty); `timeout`: the client timeout in the connection URI."""
        self.handler = _Handler(folder)
        self._serve = handler or self.handler
        self._timeout = timeout
        self._port = port
        self.controller: Controller | None = None

    def start(self) -> int:
        port = self._port or _free_port()
        self.controller = Controller(self._serve, hostname="127.0.0.1", port=port)
        self.controller.start()
        self._port = port
        return port

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def messages(self) -> list[EmailMessage]:
        with self.handler.lock:
            return list(self.handler.messages)

    def connection_uri_json(self, from_email: str = "regime-monitor@localhost") -> str:
        import json

        return json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": self.port,
                           "extra": {"disable_ssl": True, "disable_tls": True, "from_email": from_email,
                                     "timeout": self._timeout, "retry_limit": 0}})

    def __enter__(self) -> MailCatcher:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
