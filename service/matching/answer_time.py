"""When a request that may look up perpetrator identifiers answers: at a fixed time after it began.

A look-up that finds another case does more before the answer than one that finds none: it reads who holds
the other cases, tells them (notices in the outbox) and audits the match, a few milliseconds on an idle
server. A hostile "reporter" (the perpetrator, naming themself; anyone naming someone) could time the
answer and learn whether someone else has reported that person, which the matching never tells a reporter.
So every request that may register identifiers (a report with them, identifiers added later, the waiting
ones registered at the reporter's sign-in) answers no sooner than ``MATCHING_ANSWER_SECONDS`` after it
began, whatever the look-up found (``tests/matching/test_answer_time.py`` plays the hostile reporter).

The pad is far above what a look-up costs (a few milliseconds), and a reporter does not notice a third of
a second on a form. Work that takes longer (a loaded server) answers at the next whole multiple of the pad,
so a match shows only where it pushes the work across such a step. What the pad cannot hide: the match's
work still holds its locks and its share of the process while it runs, which other requests sent at the
same moment could feel. Taking the look-up of the other cases, its notices and its audit out of the request
altogether would remove the difference at its source; that is the next step (docs/matching.md). A holder's
button that registers a case's waiting identifiers is not padded: the holder sees the match on the case
page anyway.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

# How long after it began a request that may look up identifiers answers, at the earliest.
MATCHING_ANSWER_SECONDS = 0.3


@asynccontextmanager
async def answer_at_a_fixed_time(padded: bool = True) -> AsyncIterator[None]:
    """The block's request answers at the first whole multiple of ``MATCHING_ANSWER_SECONDS`` after the
    block began that its work has not passed, if ``padded`` (which must not depend on what a look-up
    finds), with an answer or an error alike. A request cancelled (the client went away) is not held."""
    if not padded:
        yield
        return
    loop = asyncio.get_running_loop()
    began = loop.time()
    try:
        yield
    except Exception:
        await _until_the_step(loop, began)
        raise
    await _until_the_step(loop, began)


async def _until_the_step(loop: asyncio.AbstractEventLoop, began: float) -> None:
    step = MATCHING_ANSWER_SECONDS
    if step <= 0:
        return
    steps = max(1, math.ceil((loop.time() - began) / step))
    left = began + steps * step - loop.time()
    if left > 0:
        await asyncio.sleep(left)
