"""Types shared by the notification tests and their fixtures (tests/notifications/conftest.py)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path
from typing import Any


@dataclass
class Inbox:
    """What the SMTP server received: one entry per delivered message (envelope recipient, parsed mail)."""

    messages: list[tuple[str, Message]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    refuse: bool = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return "451 4.3.0 try again later"
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


@dataclass
class SmtpServer:
    host: str
    port: int
    inbox: Inbox


@dataclass
class WebhookReceiver:
    url: str
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    # Status codes to answer, in order; the last one repeats.
    statuses: list[int] = field(default_factory=lambda: [204])

    def body(self, index: int) -> Any:
        return json.loads(self.requests[index][1])


def maildir_messages(folder: Path) -> list[Message]:
    new = folder / "new"
    if not new.exists():
        return []
    return [message_from_bytes(path.read_bytes(), policy=policy.default) for path in sorted(new.iterdir())]


class RedisProcess:
    """A redis-server of one test, that the test can stop and start again on the same port."""

    def __init__(self, folder: Path, port: int) -> None:
        import shutil

        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is missing: run `make test`, which installs it")
        self.binary = binary
        self.folder = folder
        self.port = port
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
        argv += ["--appendonly", "yes"]
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
