"""Webhooks: a JSON POST, with a timeout and retries with backoff.

httpx is imported at the first delivery, not before: a daemon that sends no webhook does
not pay its memory (about 5 MB of idle RSS, bench B2).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

import trio

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__package__)

TIMEOUT_SECONDS: Final = 10.0
"""Bound on one attempt, from connecting to the end of the answer."""
ATTEMPTS: Final = 3
BACKOFF_SECONDS: Final = 1.0
"""Wait before the second attempt; doubled before each next one."""
RETRIED_STATUSES: Final = frozenset({408, 425, 429, 500, 502, 503, 504})
"""Answers worth trying again (the receiver is busy or restarting); any other answer that
is not 2xx fails at once: asking again would get the same."""


class DeliveryFailed(Exception):
    """A webhook was not delivered; the message says why (after how many attempts)."""


def where(url: str) -> str:
    """The URL without its path and query, for log lines: a chat webhook's path is its
    secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


class WebhookSender:
    """POSTs JSON bodies through one HTTP client, opened at the first POST (its
    connections are reused); :meth:`aclose` closes it."""

    def __init__(
        self,
        *,
        timeout_seconds: float = TIMEOUT_SECONDS,
        attempts: int = ATTEMPTS,
        backoff_seconds: float = BACKOFF_SECONDS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.timeout_seconds = timeout_seconds
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def post(self, url: str, body: bytes) -> int:
        """POST ``body`` (JSON) to ``url`` until it is answered with a 2xx; returns the
        number of attempts it took.

        Error handling: raises :class:`DeliveryFailed` once the attempts are spent, or at
        once for an answer that retrying would not change (404, 401...). Each attempt is
        bounded by ``timeout_seconds``; the whole by about ``attempts`` times that plus the
        backoff."""
        problem = ""
        for attempt in range(1, self.attempts + 1):
            if attempt > 1:
                await trio.sleep(self.backoff_seconds * 2 ** (attempt - 2))
            retry, problem = await self._attempt(url, body)
            if not problem:
                return attempt
            if not retry:
                break
            log.debug("webhook to %s: %s (attempt %d of %d)", where(url), problem, attempt,
                      self.attempts)  # fmt: skip
        raise DeliveryFailed(f"{problem} (attempt {attempt} of {self.attempts})")

    def _new_client(self) -> httpx.AsyncClient:
        import httpx

        return httpx.AsyncClient(follow_redirects=False, transport=self._transport)

    async def _attempt(self, url: str, body: bytes) -> tuple[bool, str]:
        """(whether to retry, what went wrong); ``(False, "")`` when delivered."""
        import httpx  # loaded by _new_client already: a dictionary lookup

        if self._client is None:
            # Importing httpx and building its TLS context take 0.1-0.4 s: not on the loop.
            self._client = await trio.to_thread.run_sync(self._new_client)
        with trio.move_on_after(self.timeout_seconds):
            try:
                response = await self._client.post(
                    url,
                    content=body,
                    headers={"Content-Type": "application/json"},
                    timeout=self.timeout_seconds,
                )
            except httpx.TimeoutException:
                return True, f"no answer within {self.timeout_seconds:g} s"
            except httpx.TransportError as exc:
                return True, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            except httpx.HTTPError as exc:  # an invalid URL, too many redirects...
                return False, f"{type(exc).__name__}: {exc}"
            if response.is_success:
                return False, ""
            return response.status_code in RETRIED_STATUSES, f"HTTP {response.status_code}"
        return True, f"no answer within {self.timeout_seconds:g} s"
