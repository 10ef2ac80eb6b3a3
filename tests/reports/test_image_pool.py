"""Image cleaning runs off the event loop, in a bounded pool (issue 14.4).

Re-encoding a large, highly compressed image takes a CPU for a long while; on the event loop it would stall
every other request of the process (the benchmark bench/uploads_loop.py shows the JSON intake's latency
while such uploads arrive). These tests check the mechanism, not the time: where the work runs, and how
much of it runs at once.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time

import httpx
import pytest
from PIL import Image

from service.app import create_app
from service.evidence import images
from service.runtime import Runtime
from tests.support.forms import report_body, report_form_tokens

FIELDS = report_body(type_codes="A1", description="Fotos der Schmiererei.", channel="letter")


def _png(side: int = 64) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (side, side), (10, 120, 40)).save(out, format="PNG")
    return out.getvalue()


class _Watch:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.threads: list[str] = []
        self.running = 0
        self.most = 0


def test_images_are_cleaned_in_the_bounded_pool_while_the_loop_goes_on(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given eight report forms with an image each arriving at once, every image is cleaned in a thread of
    the image pool (never the event loop's), at most IMAGE_WORKERS at a time, and the loop answers other
    requests while they are cleaned."""
    watch = _Watch()
    original = images.strip_image
    loop_threads: set[str] = set()

    def watched(data: bytes, content_type: str) -> bytes:
        with watch.lock:
            watch.threads.append(threading.current_thread().name)
            watch.running += 1
            watch.most = max(watch.most, watch.running)
        try:
            time.sleep(0.1)  # long enough for the forms to overlap
            return original(data, content_type)
        finally:
            with watch.lock:
                watch.running -= 1

    monkeypatch.setattr(images, "strip_image", watched)
    app = create_app(runtime=runtime)
    image = _png()

    async def send_form(client: httpx.AsyncClient) -> int:
        page = await client.get("/melden")
        files = [("attachments", ("foto.png", image, "image/png"))]
        fields = {**FIELDS, **report_form_tokens(page.text)}
        response = await client.post("/melden", data=fields, files=files)
        return response.status_code

    async def main() -> tuple[list[int], list[float]]:
        loop_threads.add(threading.current_thread().name)
        clients = [
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")
            for _ in range(8)
        ]
        ticks: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            # The loop's own heartbeat while the images are cleaned.
            while not done.is_set():
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)

        tick_task = asyncio.create_task(ticker())
        try:
            statuses = await asyncio.gather(*(send_form(client) for client in clients))
        finally:
            done.set()
            await tick_task
            for client in clients:
                await client.aclose()
        return list(statuses), ticks

    statuses, ticks = asyncio.run(main())
    assert statuses == [201] * 8
    assert len(watch.threads) == 8
    assert all(name.startswith("image-clean") for name in watch.threads), watch.threads
    assert not set(watch.threads) & loop_threads, "never on the event loop's thread"
    assert 1 <= watch.most <= images.IMAGE_WORKERS, watch.most
    # The loop kept ticking while the pool worked (a count, not a time: this is a shared machine).
    assert len(ticks) > 5


def test_an_image_above_the_pixel_cap_is_refused_before_it_is_decoded() -> None:
    """16 megapixels at most; the size is read from the header, so no pixel of a bomb is ever decoded."""
    side = 4001
    out = io.BytesIO()
    Image.new("L", (side, side)).save(out, format="PNG")
    with pytest.raises(images.TooManyPixels):
        images.strip_image(out.getvalue(), "image/png")
    assert images.MAX_IMAGE_PIXELS <= 16_000_000


def test_an_image_is_opened_with_the_detected_format_only() -> None:
    """A PNG behind JPEG's magic bytes is not handed to whichever decoder Pillow would guess."""
    png = _png()
    with pytest.raises(Exception):  # noqa: B017 - any refusal of the decoder will do
        images.strip_image(png, "image/jpeg")
