"""``GET /api/stream``: the live feed as Server-Sent Events (new epochs, device events, alert transitions).

Polls ``Store.feed_since`` every ``POLL_S`` (the store is the one place every worker writes to, so
the feed needs no broker connection). Every event carries the feed cursor as its SSE id; a client
that reconnects sends it back as ``Last-Event-ID`` and resumes exactly after it (browsers do this by
themselves). Without it the feed starts at the present. FastAPI sends a keep-alive comment every
15 s of silence. The generator ends when the client goes away (FastAPI cancels it) or the server
shuts down (``closing``), so uvicorn's shutdown never waits on an open feed.

A feed outlives the request that authenticated it, so it asks the store again every ``TOKEN_RECHECK_S``
whether its token still holds (not the 5-s token cache): a revoked token's feed ends within about 2.5 s,
whichever process revoked it. Open feeds are capped per token (``SLEEPLM_FEEDS_PER_TOKEN``) and in all
(``SLEEPLM_FEEDS_TOTAL``): each polls the store, and a few hundred slowed every other answer; over a cap
the answer is 429 naming it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.sse import EventSourceResponse, ServerSentEvent

from dashboards.api.deps import ClosingDep, StoreDep
from dashboards.api.schemas import MAX_ID, Error
from dashboards.api.security import Viewer, bearer
from psg.errors import PSGError
from store import Cursor

router = APIRouter(prefix="/api", tags=["live feed"])

#: Seconds between store polls; an epoch reaches the page at most this long after it is stored.
POLL_S = 0.5
#: Reconnection delay the client is told to use (ms).
RETRY_MS = 2000
#: Most feed items read per poll.
BATCH = 500
#: Seconds between checks that the feed's token is still valid (asked of the store, not the token cache).
TOKEN_RECHECK_S = 2.0


class FeedLimits:
    """Counts open feeds per token id and in all; ``acquire`` says why not when a cap is reached."""

    def __init__(self, per_token: int, total: int) -> None:
        self.per_token, self.total = per_token, total
        self._open: dict[int, int] = {}
        self._lock = threading.Lock()

    def acquire(self, token_id: int) -> str | None:
        with self._lock:
            if sum(self._open.values()) >= self.total:
                return (
                    f"the API already serves {self.total} live feeds (SLEEPLM_FEEDS_TOTAL); close a page or "
                    "display showing the live ward, or retry later"
                )
            if self._open.get(token_id, 0) >= self.per_token:
                return (
                    f"this token already has {self.per_token} live feeds open (SLEEPLM_FEEDS_PER_TOKEN); close "
                    "another tab or display signed in with it, or give that display its own token"
                )
            self._open[token_id] = self._open.get(token_id, 0) + 1
            return None

    def release(self, token_id: int) -> None:
        with self._lock:
            left = self._open.get(token_id, 0) - 1
            if left > 0:
                self._open[token_id] = left
            else:
                self._open.pop(token_id, None)

    def open_feeds(self) -> int:
        with self._lock:
            return sum(self._open.values())


async def feed_slot(request: Request, principal: Viewer) -> AsyncIterator[None]:
    """Holds one of the capped feed slots for as long as the feed is open (429 when none is free)."""
    limits: FeedLimits = request.app.state.feeds
    refusal = limits.acquire(principal.token_id)
    if refusal is not None:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, detail=refusal, headers={"Retry-After": "10"})
    try:
        yield
    finally:
        limits.release(principal.token_id)


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
    "`event: alert` (data: StreamAlert); `id` is the feed cursor, sent back as `Last-Event-ID` to resume. The feed "
    "ends within a few seconds of its token's revocation.",
    responses={429: {"model": Error, "description": "Too many live feeds open for this token or in all"}},
)
async def stream(
    store: StoreDep,
    closing: ClosingDep,
    _: Viewer,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    __: Annotated[None, Depends(feed_slot)],
    cursor: Annotated[Cursor | None, Depends(resume_cursor)],
    bed: Annotated[str | None, Query(min_length=1, max_length=128, description="only this bed")] = None,
) -> AsyncIterator[ServerSentEvent]:
    token = credentials.credentials if credentials is not None else ""
    position = cursor if cursor is not None else await anyio.to_thread.run_sync(store.feed_head)
    yield ServerSentEvent(comment="sleeplm live feed", retry=RETRY_MS)
    checked = time.monotonic()
    while not closing.is_set():
        if time.monotonic() - checked >= TOKEN_RECHECK_S:
            if await anyio.to_thread.run_sync(store.verify_token, token) is None:
                yield ServerSentEvent(comment="token revoked or unknown: the feed ends; sign in again")
                return
            checked = time.monotonic()
        items, position = await anyio.to_thread.run_sync(store.feed_since, position, bed, BATCH)
        for item in items:
            yield ServerSentEvent(event=item["kind"], id=item["cursor"], data=item["data"])
        if len(items) < BATCH:
            await anyio.sleep(POLL_S)
