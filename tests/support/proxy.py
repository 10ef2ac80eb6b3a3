"""A real reverse proxy in front of a real server, on loopback only (tests/reports/test_behind_proxy.py):
nginx from Debian (``make test`` installs it) forwarding to uvicorn serving the app in a thread of the test.

Clients are told apart by their source address: every 127.x.y.z is loopback on Linux, so a client bound to
127.0.0.7 reaches nginx as 127.0.0.7, and nginx appends that to X-Forwarded-For as any proxy would.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from tests.support.stack import free_port


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


class ThreadServer:
    """uvicorn serving ``app`` on a free loopback port in a thread; its own proxy handling is off, as in
    production (the service reads X-Forwarded-For itself)."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            proxy_headers=False,
            access_log=False,
            log_level="warning",
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> ThreadServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=20)


NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    client_max_body_size 100m;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_set_header Host $host;
            # What an operator's proxy must do (README): append the peer to the chain.
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
        }}
    }}
}}
"""


class Nginx:
    """nginx in a folder of its own, forwarding 127.0.0.1:<port> to 127.0.0.1:<upstream>."""

    def __init__(self, folder: Path, upstream: int) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            raise RuntimeError("nginx is missing: run `make test`, which installs it")
        self.port = free_port()
        self.dir = folder
        folder.mkdir(parents=True, exist_ok=True)
        conf = folder / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=folder, port=self.port, upstream=upstream))
        self._argv = [binary, "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(conf)]
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Nginx:
        self._process = subprocess.Popen(self._argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for_port(self.port)
        except RuntimeError:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def client(self, source: str) -> httpx.Client:
        """A client whose connections come from ``source`` (a loopback address such as 127.0.0.7)."""
        transport = httpx.HTTPTransport(local_address=source)
        return httpx.Client(transport=transport, base_url=self.url, timeout=20)
