"""Which requests a fake server breaks, and how: queued faults and random injection.

`FaultPlan` decides, per request, whether a fault applies and which; the server's
pipeline then acts it out (`FakeServer.queue_fault` documents every kind). Nothing here
touches a socket.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = ["FAULT_KINDS", "Fault", "FaultPlan"]

#: The fault kinds of `FakeServer.queue_fault` and `FakeServer.inject_faults`; see
#: `FakeServer.queue_fault` for what each one does.
FAULT_KINDS: Final[tuple[str, ...]] = (
    "disconnect",
    "reset_before_body",
    "reset_mid_body",
    "truncated_json",
    "html_502",
    "empty_200",
    "wrong_content_type",
    "html_200",
    "stall",
    "keepalive_close",
    "error_5xx",
    "rate_limited",
    "process_then_drop",
    "huge_body",
    "huge_header",
    "bad_status_line",
    "many_headers",
    "slow_trickle",
    "short_body",
)
_FAULT_SET: Final = frozenset(FAULT_KINDS)


@dataclass
class Fault:
    """One queued fault: ``kind`` for the next ``remaining`` requests ``path`` matches.

    ``kind`` is ``"error"`` (answer with ``status``, ``body``, ``content_type`` and
    ``headers``), ``"delay"`` (wait, then handle normally) or one of `FAULT_KINDS`;
    ``delay`` is waited before either. ``path`` None matches every request.
    """

    kind: str
    remaining: int
    path: str | None
    status: int = 0
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] | None = None
    delay: float = 0.0


class FaultPlan:
    """The queue of faults, then random injection, consulted once per admitted request.

    Queued faults are taken in the order queued, the first whose ``path`` matches the
    request's endpoint or route template; a request no queued fault claims gets a random
    kind with the injection rate. The random draws (and `rng`, which the server also uses
    to pick an ``error_5xx`` status) come from one seeded `random.Random`, so a run is
    repeatable given the order of requests.

    Args:
        seed: Seed of `rng`; None seeds from the OS.
    """

    def __init__(self, seed: int | None) -> None:
        self.rng = random.Random(seed)
        self.queued: list[Fault] = []
        self.rate = 0.0
        self.kinds: tuple[str, ...] = FAULT_KINDS
        self.path: str | None = None

    @staticmethod
    def check_kind(kind: str) -> None:
        """Raise ValueError unless ``kind`` is one of `FAULT_KINDS`."""
        if kind not in _FAULT_SET:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")

    def queue(self, fault: Fault) -> None:
        """Append ``fault`` to the queue.

        Raises:
            ValueError: ``fault.remaining`` (the ``times`` asked for) is < 1.
        """
        if fault.remaining < 1:
            raise ValueError("times must be >= 1")
        self.queued.append(fault)

    def inject(
        self, rate: float, kinds: Sequence[str], *, seed: int | None, path: str | None
    ) -> None:
        """Break each request ``path`` matches with probability ``rate``, kind drawn from
        ``kinds``; ``seed`` reseeds `rng` first. See `FakeServer.inject_faults`."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        chosen = tuple(kinds)
        if not chosen:
            raise ValueError("kinds must not be empty")
        unknown = [k for k in chosen if k not in _FAULT_SET]
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; expected some of {FAULT_KINDS}")
        if seed is not None:
            self.rng.seed(seed)
        self.rate = float(rate)
        self.kinds = chosen
        self.path = path

    def clear(self) -> None:
        """Forget the queue and stop injecting."""
        self.queued.clear()
        self.rate = 0.0

    @property
    def pending(self) -> int:
        """Queued faults still to serve, summed over their ``times``."""
        return sum(f.remaining for f in self.queued)

    def take(self, endpoint: str, template: str) -> Fault | None:
        """Consume and return the first queued fault matching the request, if any."""
        for i, fault in enumerate(self.queued):
            if fault.path is None or fault.path == endpoint or fault.path == template:
                fault.remaining -= 1
                if fault.remaining == 0:
                    del self.queued[i]
                return fault
        return None

    def draw(self, endpoint: str, template: str) -> str | None:
        """A random fault kind for an unclaimed request, or None (most of the time)."""
        path = self.path
        if path is not None and path != endpoint and path != template:
            return None
        rng = self.rng
        if rng.random() >= self.rate:
            return None
        return rng.choice(self.kinds)
