"""Images stripped of their metadata (EXIF GPS!) by re-encoding the pixels, in a small thread pool of their
own, never on the event loop (service/evidence/uploads.py hands them over).
"""

from __future__ import annotations

import asyncio
import io
from concurrent.futures import ThreadPoolExecutor

from PIL import Image, ImageOps

from service.evidence.filetypes import IMAGE_TYPES

# Images above this many pixels are refused before they are decoded (a phone's 16 MP photo fits; a few
# hundred bytes that claim 60,000 x 60,000 pixels do not): decoding holds every pixel in memory.
MAX_IMAGE_PIXELS = 16_000_000
# Images are cleaned in this many threads per process, off the event loop; more wait their turn, so ten
# large images at once neither stall the loop nor hold ten decoded images in memory.
IMAGE_WORKERS = 2


class TooManyPixels(ValueError):
    """The image is larger (in pixels) than MAX_IMAGE_PIXELS: refused before it is decoded."""


def strip_image(data: bytes, content_type: str) -> bytes:
    """Re-encode the pixels only: EXIF (GPS, camera serial), XMP, ICC and text chunks do not survive.

    Runs in the image pool's threads, so it changes no process-wide state (Pillow's own bomb limit and the
    warning filters are global): the size is checked from the header, before any pixel is decoded, and the
    file is opened with the detected format's decoder only, never one Pillow would guess."""
    fmt = IMAGE_TYPES[content_type]
    try:
        image = Image.open(io.BytesIO(data), formats=[fmt])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise TooManyPixels() from exc
    with image:
        if image.format != fmt:
            raise ValueError("image format does not match its content")
        if image.width * image.height > MAX_IMAGE_PIXELS:
            raise TooManyPixels()
        image.load()
        # Apply the orientation tag before dropping it, so phone photos are not turned sideways.
        upright = ImageOps.exif_transpose(image)
        pixels = upright.convert("RGB") if fmt == "JPEG" else upright
        # Savers also write metadata they find on the image itself, not only what the save call passes
        # (Pillow keeps a JPEG's comment so): only the pixels, and a palette's transparency, go on.
        pixels.info = {key: value for key, value in pixels.info.items() if key == "transparency"}
        out = io.BytesIO()
        if fmt == "JPEG":
            pixels.save(out, format="JPEG", quality=90)
        else:
            pixels.save(out, format=fmt)
        return out.getvalue()


_IMAGE_POOL = ThreadPoolExecutor(max_workers=IMAGE_WORKERS, thread_name_prefix="image-clean")


async def strip_image_off_loop(data: bytes, content_type: str) -> bytes:
    """``strip_image`` in the bounded image pool: the event loop goes on serving while Pillow works."""
    return await asyncio.get_running_loop().run_in_executor(_IMAGE_POOL, strip_image, data, content_type)
