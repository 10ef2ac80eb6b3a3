"""Signed, content-free webhooks for organisations that run their own on-call tools."""

from __future__ import annotations

import json
import time

import httpx

from service.crypto import sign_webhook
from service.notifications.recipients import NotificationContext


class WebhookFailed(Exception):
    """The receiver did not answer 2xx; the status (never the body) is kept for the retry log."""


def webhook_body(delivery_id: str, event: str, context: NotificationContext, link: str) -> bytes:
    """The JSON body: what happened, for whom, how urgent, where to sign in. Nothing of the report."""
    return json.dumps(
        {
            "id": delivery_id,
            "event": event,
            "organisation": context.get("organisation_slug"),
            "urgency": context.get("urgency"),
            "url": link,
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


class WebhookSender:
    def __init__(self, timeout_seconds: float) -> None:
        self._timeout = timeout_seconds

    def send(self, url: str, secret: bytes, body: bytes) -> None:
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": "Rueckhalt-Webhook/1",
            "rueckhalt-timestamp": str(timestamp),
            "rueckhalt-signature": sign_webhook(secret, timestamp, body),
        }
        # No redirects: a receiver that moved must be reconfigured, not followed to wherever it points.
        with httpx.Client(timeout=self._timeout, follow_redirects=False) as client:
            response = client.post(url, content=body, headers=headers)
        if not 200 <= response.status_code < 300:
            raise WebhookFailed(f"status {response.status_code}")
