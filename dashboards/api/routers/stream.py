"""``GET /api/stream``: the live feed as Server-Sent Events (new epochs, device events, alert transitions).

Polls ``Store.feed_since`` every ``POLL_S`` (the store is the one place every worker writes to, so
the feed needs no broker connection). Every event carries the feed cursor as its SSE id; a client
that reconnects sends it back as ``Last-Event-ID`` and resumes exactly after it (browsers do this by
themselves). Without it the feed starts at the present. FastAPI sends a keep-alive comment every
15 s of silence. The generator ends when the client goes away (FastAPI cancels it) or the server
shuts down (``closing``), so uvicorn's shutdown never waits on an open feed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Header, Query
from fastapi.sse import EventSourceResponse, ServerSentEvent

from dashboards.api.deps import ClosingDep, StoreDep
from dashboards.api.schemas import MAX_ID
from dashboards.api.security import Viewer
from psg.errors import PSGError
from store import Cursor

router = APIRouter(prefix="/api", tags=["live feed"])

#: Seconds between store polls; an epoch reaches the page at most this long after it is stored.
POLL_S = 0.5
#: Reconnection delay the client is told to use (ms).
RETRY_MS = 2000
#: Most feed items read per poll.
BATCH = 500


def resume_cursor(
    last_event_id: Annotated[
        str | None,
        Header(
            pattern=r"^[0-9]+-[0-9]+(-[0-9]+)?$",
            max_length=64,
            description="SSE id of the last event received ('<epoch id>-<event id>-<alert id>'): resume right after it",
        ),
    ] = None,
) -> Cursor | None:
    if last_event_id is None:
        return None
    cursor = Cursor.parse(last_event_id)
    if max(cursor.epoch_id, cursor.event_id, cursor.alert_id) > MAX_ID:  # would overflow the store's query
        raise PSGError(f"Last-Event-ID {last_event_id!r}: expected row ids of at most {MAX_ID}")
    return cursor


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    summary="Live feed of new epochs and device events",
    description="Server-Sent Events: `event: epoch` (data: StreamEpoch), `event: device` (data: StreamDevice) and "
    "`event: alert` (data: StreamAlert); `id` is the feed cursor, sent back as `Last-Event-ID` to resume.",
)
async def stream(
    store: StoreDep,
    closing: ClosingDep,
    _: Viewer,
    cursor: Annotated[Cursor | None, Depends(resume_cursor)],
    bed: Annotated[str | None, Query(min_length=1, max_length=128, description="only this bed")] = None,
) -> AsyncIterator[ServerSentEvent]:
    position = cursor if cursor is not None else await anyio.to_thread.run_sync(store.feed_head)
    yield ServerSentEvent(comment="sleeplm live feed", retry=RETRY_MS)
    while not closing.is_set():
        items, position = await anyio.to_thread.run_sync(store.feed_since, position, bed, BATCH)
        for item in items:
            yield ServerSentEvent(event=item["kind"], id=item["cursor"], data=item["data"])
        if len(items) < BATCH:
            await anyio.sleep(POLL_S)
