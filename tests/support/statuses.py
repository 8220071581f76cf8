"""The error class an adapter raises for each HTTP status its tests send it (the Loop and
Wemasy adapters' status-mapping tests share the table; ``unit/test_errors.py`` tests the mapping
itself, on more statuses).
"""

from __future__ import annotations

import wemasy_async as w

_STATUSES: dict[type[w.APIStatusError], tuple[int, ...]] = {
    w.BadRequestError: (400,),
    w.AuthenticationError: (401,),
    w.PaymentRequiredError: (402,),
    w.PermissionDeniedError: (403,),
    w.NotFoundError: (404,),
    w.ConflictError: (409,),
    w.UnprocessableEntityError: (422,),
    w.RateLimitError: (429,),
    w.InternalServerError: (500, 502, 503),
    w.APIStatusError: (405, 418),  # no class of its own
}

STATUS_CLASSES: list[tuple[int, type[w.APIStatusError]]] = sorted(
    ((status, cls) for cls, statuses in _STATUSES.items() for status in statuses),
    key=lambda pair: pair[0],
)
"""``(status, class)``, by status: each status with the class of the error an adapter raises
for it."""
