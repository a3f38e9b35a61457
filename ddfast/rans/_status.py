"""Per-lane decoder status codes (csrc/rans_coder.h, enum Status) -> BitstreamError."""
from __future__ import annotations

import numpy as np

from ddfast.errors import BitstreamError

OK = 0
ZERO_LAST_WORD = 1
DAMAGED = 2
UNREAD_WORDS = 3
NONZERO_STATE = 4

_MESSAGES = {
    ZERO_LAST_WORD: "its last word is 0, so it has no valid initial state (a stream never ends in 0)",
    DAMAGED: "the decoder reached a state the encoder cannot produce (damaged stream)",
    UNREAD_WORDS: "words are left over after its last symbol (truncated symbols or damaged stream)",
    NONZERO_STATE: "its final state is not the initial state 0 (truncated or damaged stream)",
}


def describe(code: int) -> str:
    """What a status code says about a lane."""
    return _MESSAGES.get(code, f"unknown status {code}")


def raise_for_status(status: np.ndarray, strict: bool, remaining: np.ndarray | None = None) -> None:
    """BitstreamError for the first failing lane; without strict only ZERO_LAST_WORD fails."""
    bad = status != OK if strict else status == ZERO_LAST_WORD
    if not np.any(bad):
        return
    lane = int(np.argmax(bad))
    code = int(status[lane])
    detail = describe(code)
    if code == UNREAD_WORDS and remaining is not None:
        detail = f"{int(remaining[lane])} " + detail
    count = int(np.count_nonzero(bad))
    more = f" ({count - 1} more lanes failed)" if count > 1 else ""
    raise BitstreamError(f"rANS lane {lane}: {detail}{more}")
