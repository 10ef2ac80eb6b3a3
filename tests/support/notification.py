"""Types shared by the notification tests and their fixtures (tests/notifications/conftest.py), and by the
fault and scale-out benchmarks (bench/): an SMTP server, a webhook receiver and a Redis that a test can stop
and start again on the same port."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Inbox:
    """What the SMTP server received: one entry per delivered message (envelope recipient, parsed mail)."""

    messages: list[tuple[str, Message]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    refuse: bool = False
    # A slow server: the time between the end of DATA and the answer, when a killed client may vanish.
    delay_seconds: float = 0.0
    # Mails between the end of DATA and the answer right now (a fault test kills the sender then).
    in_flight: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return "451 4.3.0 try again later"
        if self.delay_seconds:
            self.in_flight += 1
            try:
                await asyncio.sleep(self.delay_seconds)
            finally:
                self.in_flight -= 1
            # RFC 5321: the server takes responsibility for a mail with its 250, which a client that is
            # gone never hears; such a mail is the client's to send again, and is not counted here.
            if server.transport is None or server.transport.is_closing():
                return "421 4.4.2 client gone"
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.messages.append((rcpt, message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        with self.lock:
            return [message for rcpt, message in self.messages if rcpt == address]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[tuple[str, Message]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.05)
        with self.lock:
            return list(self.messages)

    def message_ids(self) -> list[str]:
        """The Message-ID of every mail received, once per recipient (a duplicate shows twice)."""
        with self.lock:
            return [str(message["Message-ID"]) for _, message in self.messages]


@dataclass
class SmtpServer:
    host: str
    port: int
    inbox: Inbox


class SmtpService:
    """An aiosmtpd server on a fixed loopback port that can be stopped (connections refused) and started
    again; received mail stays in the same inbox."""

    def __init__(self, inbox: Inbox, port: int) -> None:
        self.inbox = inbox
        self.port = port
        self._controller: Controller | None = None

    @property
    def server(self) -> SmtpServer:
        return SmtpServer("127.0.0.1", self.port, self.inbox)

    def start(self) -> None:
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@dataclass
class WebhookReceiver:
    url: str
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    # Status codes to answer, in order; the last one repeats.
    statuses: list[int] = field(default_factory=lambda: [204])
    # The status answered to each request, in the order of ``requests``.
    answered: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def body(self, index: int) -> Any:
        return json.loads(self.requests[index][1])

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            self.requests.append((headers, body))
            status = self.statuses[min(len(self.requests), len(self.statuses)) - 1]
            self.answered.append(status)
            return status

    def delivered_ids(self) -> list[str]:
        """The delivery id of every request answered 2xx (a duplicate delivery shows twice)."""
        with self.lock:
            return [
                str(json.loads(body)["id"])
                for (_, body), status in zip(self.requests, self.answered, strict=True)
                if 200 <= status < 300
            ]


class WebhookServer:
    """An HTTP server on loopback that records each webhook and answers with the receiver's statuses."""

    def __init__(self, port: int) -> None:
        self.receiver = WebhookReceiver(url=f"http://127.0.0.1:{port}/hook")
        receiver = self.receiver

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                status = receiver.answer({k.lower(): v for k, v in self.headers.items()}, body)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def maildir_messages(folder: Path) -> list[Message]:
    new = folder / "new"
    if not new.exists():
        return []
    return [message_from_bytes(path.read_bytes(), policy=policy.default) for path in sorted(new.iterdir())]


class RedisProcess:
    """A redis-server of one test, that the test can stop and start again on the same port."""

    def __init__(self, folder: Path, port: int, *, appendonly: bool = True) -> None:
        import shutil

        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is missing: run `make test`, which installs it")
        self.binary = binary
        self.folder = folder
        self.port = port
        self.appendonly = appendonly
        self.process: Any = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import socket
        import subprocess

        argv = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            str(self.folder),
        ]
        # Append-only file: a restarted Redis keeps its queues, as the production compose file configures it.
        argv += ["--appendonly", "yes" if self.appendonly else "no"]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def self_signed_certificate(
    folder: Path, *, days: int, name: str, extensions: tuple[str, ...] = ()
) -> tuple[Path, Path]:
    """A self-signed certificate and its key (``openssl req -x509``) for a local TLS relay."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key)]
    command += ["-out", str(cert), "-days", str(days), "-subj", f"/CN={name}"]
    for extension in extensions:
        command += ["-addext", extension]
    subprocess.run(command, check=True, capture_output=True)
    return cert, key
