"""JSON intake while large images arrive: does cleaning images (Pillow re-encoding) stall the event loop?

Production setup on loopback: PostgreSQL, Redis for rate limits, uvicorn with uvloop and ONE worker process
(one event loop: the case where a blocked loop would show most). First the JSON intake alone at a fixed rate
(open loop, so queueing shows in the latencies), then the same while anonymous clients keep sending the
report form with large, highly compressed images (a 16-megapixel PNG of a few kilobytes each, several per
form: the worst case of decode cost per byte sent). Reports the JSON intake's p50/p99 alone and under the
uploads (target: p99 < 100 ms), and how many images were cleaned per second.

Not a test: figures are printed and written to bench/results/uploads_loop.json (make bench-uploads).

Usage: python -m bench.uploads_loop --seconds 15
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from bench.common import Stack, free_port
from bench.intake import open_loop, start_server
from tests.support.forms import report_body, report_form_tokens

ROOT = Path(__file__).resolve().parent.parent

TARGET_P99_MS = 100.0
FORM = report_body(type_codes="A1", description="Drohbriefe als Fotos.", channel="letter")


def large_image(side: int = 4000) -> bytes:
    """side x side pixels (16 MP at 4000, the cap) that compress to a few kilobytes: all the decoding and
    re-encoding work, almost none of the bytes."""
    out = io.BytesIO()
    Image.new("RGB", (side, side), (40, 90, 160)).save(out, format="PNG", optimize=True)
    return out.getvalue()


async def uploader(base: str, image: bytes, per_form: int, deadline: float, counts: dict[str, int]) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        while time.monotonic() < deadline:
            page = await client.get("/melden")
            try:
                # Each view of the form files once: its CSRF and its own single-use submission token.
                tokens = report_form_tokens(page.text)
            except AssertionError:  # a page without its form (an error page under load)
                counts["errors"] += 1
                continue
            files = [("attachments", (f"foto{n}.png", image, "image/png")) for n in range(per_form)]
            fields = {**FORM, **tokens}
            response = await client.post("/melden", data=fields, files=files)
            if response.status_code == 201:
                counts["forms"] += 1
                counts["images"] += per_form
            else:
                counts["errors"] += 1


async def under_uploads(
    base: str, rate: float, seconds: float, uploaders: int, per_form: int, image: bytes
) -> tuple[dict[str, float], dict[str, Any]]:
    counts = {"forms": 0, "images": 0, "errors": 0}
    deadline = time.monotonic() + seconds + 2
    started = time.monotonic()
    tasks = [asyncio.create_task(uploader(base, image, per_form, deadline, counts)) for _ in range(uploaders)]
    await asyncio.sleep(2)  # the uploads are under way before the first JSON report is timed
    intake = await open_loop(f"{base}/api/v1/reports", rate, seconds)
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - started
    return intake, {**counts, "images_per_s": counts["images"] / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", "15")))
    parser.add_argument("--rate", type=float, default=20.0, help="JSON reports per second")
    parser.add_argument("--uploaders", type=int, default=4, help="concurrent clients sending images")
    parser.add_argument("--per-form", type=int, default=5, help="images per form")
    args = parser.parse_args()

    image = large_image()
    stack = Stack()
    try:
        url = stack.database("bench_uploads")
        stack.runtime(url).dispose()
        port = free_port()
        stack.processes.append(start_server("service.app:app_factory", stack.env(url), port, 1))
        base = f"http://127.0.0.1:{port}"

        asyncio.run(open_loop(f"{base}/api/v1/reports", args.rate, min(2.0, args.seconds / 4)))  # warm-up
        alone = asyncio.run(open_loop(f"{base}/api/v1/reports", args.rate, args.seconds))
        during, uploads = asyncio.run(
            under_uploads(base, args.rate, args.seconds, args.uploaders, args.per_form, image)
        )
        met = during["p99_ms"] < TARGET_P99_MS and during["errors"] == 0
        results: dict[str, Any] = {
            "seconds": args.seconds,
            "workers": 1,
            "json_rate_per_s": args.rate,
            "image": {"pixels": 4000 * 4000, "bytes": len(image), "per_form": args.per_form},
            "uploaders": args.uploaders,
            "intake_alone": alone,
            "intake_during_uploads": during,
            "uploads": uploads,
            "target": {"p99_ms_below": TARGET_P99_MS},
            "met": met,
        }
        print(
            f"JSON intake alone at {args.rate:.0f}/s: "
            f"p50 {alone['p50_ms']:.1f} ms, p99 {alone['p99_ms']:.1f} ms"
        )
        print(
            f"while images arrive ({uploads['images_per_s']:.1f}/s, {len(image)} bytes and 16 MP each): "
            f"p50 {during['p50_ms']:.1f} ms, p99 {during['p99_ms']:.1f} ms, {during['errors']} errors "
            f"(target p99 < {TARGET_P99_MS:.0f} ms: {'met' if met else 'NOT met'})"
        )
        out = ROOT / "bench" / "results" / "uploads_loop.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2))
        print(f"written to {out.relative_to(ROOT)}")
    finally:
        stack.close()


if __name__ == "__main__":
    main()
