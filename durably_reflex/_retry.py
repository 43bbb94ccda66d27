"""Retry policies: how often a failing step is tried again, and how long the run waits in between.

`define_job(..., retry=Retry(...))` applies a policy to every step of the job; `step.run(...,
retry=Retry(...))` overrides it for one step (`retry=None` there means the job's policy; pass
`Retry(max_attempts=1)` for none). The wait between attempts is durable, like a sleep: the run goes
back to pending, holding no worker slot, and a restart does not restart the clock. Every failed
attempt stays recorded as a failed step row beside the one that completes.

An error is retried unless it is a `NonRetryableError` (raise it, or raise from it, when trying
again cannot help) or one of the policy's `non_retryable` types.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ._errors import NonRetryableError

MAX_ATTEMPTS = 1000
MAX_DELAY_SECONDS = 366 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Retry:
    """Up to `max_attempts` tries in all (the first included). Attempt n (from 2) starts after
    `initial_delay * backoff ** (n - 2)` seconds, at most `max_delay`, each wait shifted at random
    by up to `jitter` of itself (0.1: ±10%), so that many failing runs do not retry in step."""

    max_attempts: int = 3
    initial_delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 300.0
    jitter: float = 0.1
    non_retryable: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise ValueError("Retry: max_attempts must be a whole number")
        if not 1 <= self.max_attempts <= MAX_ATTEMPTS:
            raise ValueError(f"Retry: max_attempts must be from 1 to {MAX_ATTEMPTS}")
        for name in ("initial_delay", "max_delay"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 <= value <= MAX_DELAY_SECONDS:
                raise ValueError(f"Retry: {name} must be a number of seconds from 0 to {MAX_DELAY_SECONDS}")
        if not isinstance(self.backoff, int | float) or not 1 <= self.backoff <= 100:
            raise ValueError("Retry: backoff must be a number from 1 to 100")
        if not isinstance(self.jitter, int | float) or not 0 <= self.jitter <= 1:
            raise ValueError("Retry: jitter must be a number from 0 to 1")
        if not all(isinstance(kind, type) and issubclass(kind, BaseException) for kind in self.non_retryable):
            raise ValueError("Retry: non_retryable must be a tuple of exception classes")

    def retries(self, error: BaseException, attempt: int) -> bool:
        """Whether attempt number `attempt` (from 1), which raised `error`, is tried again."""
        if attempt >= self.max_attempts or isinstance(error, (NonRetryableError, *self.non_retryable)):
            return False
        return not isinstance(error.__cause__, NonRetryableError)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before the attempt after `attempt` (from 1)."""
        try:
            grown = self.initial_delay * self.backoff ** (attempt - 1)
        except OverflowError:
            grown = math.inf
        return max(0.0, min(self.max_delay, grown) * (1 + random.uniform(-self.jitter, self.jitter)))
