"""Memory of one api process: at rest, under intake load, and while a 50 MB file streams in and out.

One uvicorn process (uvloop, as in production, one worker so that its RSS is the process's) on PostgreSQL
and Redis on loopback. RSS is read from /proc every 20 ms by a sampling thread. The reporter sends a
50,000,000-byte file with a message (the form is encrypted in chunks while it streams in) and downloads it
again (decrypted while it streams out); "extra" is the peak during each transfer minus the RSS just before.
Targets: RSS < 150 MB at rest and under load; < 20 MB extra for the upload and for the download.
Writes bench/results/memory.json.

Usage: python -m bench.memory --seconds 20   (make bench-memory BENCH_SECONDS=20)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.common import Stack, free_port
from bench.intake import BODY, closed_loop, start_server
from tests.support.forms import csrf_token

ROOT = Path(__file__).resolve().parent.parent

FILE_BYTES = 50_000_000
MB = 1024 * 1024


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class Sampler:
    """The peak RSS of a process while a block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            time.sleep(0.02)

    def __enter__(self) -> Sampler:
        self.peak = rss_bytes(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes(self.pid))


def payload() -> Iterator[bytes]:
    """A PDF by its first bytes, then incompressible bytes, made while it is sent (never 50 MB in RAM)."""
    yield b"%PDF-1.7\n"
    left = FILE_BYTES - 9
    while left > 0:
        chunk = secrets.token_bytes(min(1 << 20, left))
        left -= len(chunk)
        yield chunk


class StreamingFile:
    """A file-like object for httpx's multipart encoder that reads from the generator."""

    def __init__(self) -> None:
        self._chunks = payload()
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                break
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


def transfer(base: str, pid: int) -> dict[str, Any]:
    with httpx.Client(base_url=base, timeout=120) as reporter:
        filed = reporter.post("/api/v1/reports", json=BODY)
        assert filed.status_code == 201, filed.text
        receipt = filed.json()["receipt"]
        signed = reporter.post(
            "/fall/anmelden", data={"csrf_token": csrf_token(reporter.get("/fall").text), "receipt": receipt}
        )
        assert signed.status_code in (200, 303), signed.status_code
        token = csrf_token(reporter.get("/fall").text)
        time.sleep(1)
        before_upload = rss_bytes(pid)
        started = time.perf_counter()
        with Sampler(pid) as upload:
            sent = reporter.post(
                "/fall/nachricht",
                data={"csrf_token": token, "message": "Hier die Aufzeichnung."},
                files=[("message_files", ("aufzeichnung.pdf", StreamingFile(), "application/pdf"))],  # type: ignore[list-item]
                follow_redirects=False,
            )
        upload_seconds = time.perf_counter() - started
        assert sent.status_code == 303, sent.text[:300]
        link = re.search(r'href="(/fall/anhang/[^"]+)"', reporter.get("/fall").text)
        assert link, "the reporter's page links the file"
        time.sleep(1)
        before_download = rss_bytes(pid)
        received = 0
        started = time.perf_counter()
        with Sampler(pid) as download, reporter.stream("GET", link.group(1)) as response:
            assert response.status_code == 200
            for chunk in response.iter_bytes():
                received += len(chunk)
        download_seconds = time.perf_counter() - started
        assert received == FILE_BYTES, received
    return {
        "file_bytes": FILE_BYTES,
        "upload": {
            "rss_before_mb": before_upload / MB,
            "peak_mb": upload.peak / MB,
            "extra_mb": (upload.peak - before_upload) / MB,
            "seconds": upload_seconds,
        },
        "download": {
            "rss_before_mb": before_download / MB,
            "peak_mb": download.peak / MB,
            "extra_mb": (download.peak - before_download) / MB,
            "seconds": download_seconds,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", "20")))
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    stack = Stack()
    try:
        url = stack.database("bench_memory")
        stack.runtime(url).dispose()
        port = free_port()
        env = stack.env(url, RUECKHALT_RECEIPT_LIMIT_PER_HOUR="100000")
        process = start_server("service.app:app_factory", env, port, 1)
        stack.processes.append(process)
        base = f"http://127.0.0.1:{port}"
        # At rest: after the start and a few requests of each kind, so that imports and pools are warm.
        asyncio.run(closed_loop(f"{base}/api/v1/reports", 2, 2.0))
        for path in ("/", "/melden", "/fall", "/healthz"):
            httpx.get(base + path, timeout=10)
        time.sleep(2)
        at_rest = rss_bytes(process.pid)
        with Sampler(process.pid) as loaded:
            load = asyncio.run(closed_loop(f"{base}/api/v1/reports", args.concurrency, args.seconds))
        streaming = transfer(base, process.pid)
        results: dict[str, Any] = {
            "rss_at_rest_mb": at_rest / MB,
            "rss_peak_under_load_mb": loaded.peak / MB,
            "load": {"concurrency": args.concurrency, "seconds": args.seconds, **load},
            **streaming,
        }
        results["targets"] = {"rss_mb_below": 150, "streaming_extra_mb_below": 20}
        results["met"] = {
            "rss_at_rest": results["rss_at_rest_mb"] < 150,
            "rss_under_load": results["rss_peak_under_load_mb"] < 150,
            "upload_extra": streaming["upload"]["extra_mb"] < 20,
            "download_extra": streaming["download"]["extra_mb"] < 20,
        }
        up, down = streaming["upload"], streaming["download"]
        print(
            f"api RSS at rest {results['rss_at_rest_mb']:.1f} MB, peak under load "
            f"{results['rss_peak_under_load_mb']:.1f} MB ({load['rate_per_s']:.0f} reports/s) | "
            f"50 MB upload +{up['extra_mb']:.1f} MB in {up['seconds']:.1f} s, "
            f"download +{down['extra_mb']:.1f} MB in {down['seconds']:.1f} s"
        )
        out = ROOT / "bench" / "results" / "memory.json"
        out.write_text(json.dumps(results, indent=2))
        print(f"met: {results['met']}; written to {out.relative_to(ROOT)}")
    finally:
        stack.close()


if __name__ == "__main__":
    main()
