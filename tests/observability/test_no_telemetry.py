"""FastAPI's own OpenTelemetry stays off (service.hardening.NO_TELEMETRY), whatever the environment says.

The adversary is an environment meant for something else: an operator who sets OTEL_* and
FASTAPI_OTEL_AUTO_CONFIGURE for another service on the host, or a library that registers a global tracer
provider. Left at FastAPI's defaults, either would make every request a span carrying its path and query,
and auto-configuration would export spans and error logs (with the body of a request that failed
validation) to the named endpoint. Each test has a control: a plain ``FastAPI()`` under the same
conditions does react, so the test can see it when it happens.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN, NoOpTracer, Span, SpanKind

from service.app import create_app
from service.runtime import Runtime
from tests.support.forms import report_body

CANARY = "QXOTELCANARY"


class RecordingTracer(NoOpTracer):
    """Records what would have become a span: its name and attributes."""

    def __init__(self, spans: list[tuple[str, dict[str, Any]]]) -> None:
        self.spans = spans

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, Any] | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Span:
        self.spans.append((name, dict(attributes or {})))
        return INVALID_SPAN


class RecordingProvider(trace.TracerProvider):
    """A configured global provider, as a library or an operator's sitecustomize would register one."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, dict[str, Any]]] = []

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return RecordingTracer(self.spans)


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> RecordingProvider:
    recording = RecordingProvider()
    # FastAPI asks ``trace.get_tracer_provider()`` on each request; patched, nothing global is changed.
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: recording)
    return recording


@pytest.fixture
def collector() -> Iterator[list[bytes]]:
    """An OTLP endpoint on loopback that records whatever reaches it."""
    received: list[bytes] = []
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(1)
                try:
                    received.append(connection.recv(65536))
                    connection.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    received_at = f"http://127.0.0.1:{server.getsockname()[1]}"
    received.append(received_at.encode())  # first item: the address (removed below)
    try:
        yield received
    finally:
        stop.set()
        thread.join(timeout=2)
        server.close()


def _plain_app() -> FastAPI:
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"ok": "yes"}

    return app


def _requests(client: TestClient) -> tuple[int, int, int]:
    """A valid report, one refused by validation with the canary in it, and a query with the canary."""
    filed = client.post("/api/v1/reports", json=report_body(description=f"{CANARY} bedroht"))
    refused = client.post("/api/v1/reports", json=report_body(land="XX", description=CANARY))
    queried = client.get(f"/?q={CANARY}")
    return filed.status_code, refused.status_code, queried.status_code


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_global_tracer_provider_sees_no_request_of_the_service(
    runtime: Runtime, provider: RecordingProvider
) -> None:
    with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1") as client:
        assert _requests(client) == (201, 422, 200)
    assert provider.spans == []

    # Control: FastAPI's default would have made a span of a request, with its query.
    with TestClient(_plain_app()) as plain:
        assert plain.get(f"/ping?q={CANARY}").status_code == 200
    request_span = provider.spans[0][1]
    assert (request_span["url.path"], request_span["url.query"]) == ("/ping", f"q={CANARY}")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_otel_variables_in_the_environment_are_not_acted_on(
    runtime: Runtime,
    collector: list[bytes],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    endpoint = collector.pop(0).decode()
    monkeypatch.setenv("FASTAPI_OTEL_AUTO_CONFIGURE", "true")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")

    with TestClient(create_app(runtime=runtime), base_url="http://127.0.0.1") as client:
        assert _requests(client) == (201, 422, 200)
    assert collector == []
    assert not [record for record in caplog.records if record.name.startswith("fastapi")]

    # Control: at FastAPI's defaults the same environment sets up the export at start-up. Without the
    # OpenTelemetry SDK (not among our dependencies) it gives up with a warning; with the SDK installed
    # it would send spans and error logs to the endpoint.
    with TestClient(_plain_app()):
        pass
    assert [record.getMessage() for record in caplog.records if record.name == "fastapi"] == [
        "FastAPI automatic telemetry configuration failed: Automatic OpenTelemetry export requires "
        "fastapi[opentelemetry] or fastapi[standard]. Install the extra, configure providers yourself, or "
        "pass telemetry={'auto_configure': False} to FastAPI()."
    ]
