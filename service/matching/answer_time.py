"""When a request that may look up perpetrator identifiers answers: at a fixed time after it began.

A look-up that finds another case does more before the answer than one that finds none: it reads who holds
the other cases, tells them (notices in the outbox) and audits the match, a few milliseconds on an idle
server. A hostile "reporter" (the perpetrator, naming themself; anyone naming someone) could time the
answer and learn whether someone else has reported that person, which the matching never tells a reporter.
So every request that may register identifiers (a report with them, identifiers added later, the waiting
ones registered at the reporter's sign-in) answers no sooner than ``MATCHING_ANSWER_SECONDS`` after it
began, whatever the look-up found (``tests/matching/test_answer_time.py`` plays the hostile reporter).

The pad is far above what a look-up costs (a few milliseconds), and a reporter does not notice a quarter of
a second on a form. It hides the difference only while the request's work fits in it: on a server so
loaded that the work alone takes longer, the answer leaves when the work is done, and what a match adds is
then within that load's own noise. Taking the look-up of the other cases, its notices and its audit out of
the request altogether would remove the difference at its source; that is the next step (docs/matching.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

# How long after it began a request that may look up identifiers answers, at the earliest.
MATCHING_ANSWER_SECONDS = 0.3


@asynccontextmanager
async def answer_at_a_fixed_time(padded: bool = True) -> AsyncIterator[None]:
    """The block's request answers no sooner than ``MATCHING_ANSWER_SECONDS`` after the block began, if
    ``padded`` (which must not depend on what a look-up finds), with an answer or an error alike. A request
    cancelled (the client went away) is not held."""
    if not padded:
        yield
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + MATCHING_ANSWER_SECONDS
    try:
        yield
    except Exception:
        await _until(loop, deadline)
        raise
    await _until(loop, deadline)


async def _until(loop: asyncio.AbstractEventLoop, deadline: float) -> None:
    left = deadline - loop.time()
    if left > 0:
        await asyncio.sleep(left)
