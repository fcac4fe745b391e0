"""A call's decode rate along its answer: tokens/s per window of 32 tokens, from the arrival time of
each streamed chunk (client.CallResult.delta_ms).

Kept in responses.jsonl beside the call's text (`decode_profile`), not on the call line: the ledger
stays one fixed-shape line per call, and a 2,000-token answer adds ~60 numbers.

    {"window_tokens": 32, "tokens_per_chunk": 1.0, "tokens_per_sec": [91.2, 88.7, ...]}

Window k covers the tokens decoded between chunk k·W and chunk (k+1)·W (W = 32 chunks; the first
chunk's arrival is the TTFT, so decoding starts there). A last, partial window counts when it
spans at least half a window. A server may send several tokens in one chunk: when it reports a
completion-token count, `tokens_per_chunk` = tokens / chunks scales both the rate and the
position (position of window k's middle = (k + 0.5) · W · tokens_per_chunk).
"""

from __future__ import annotations

from typing import Any

WINDOW_CHUNKS = 32


def decode_profile(delta_ms: list[float], completion_tokens: int | None) -> dict[str, Any] | None:
    """The profile of one call, or None when the answer is shorter than half a window."""
    intervals = len(delta_ms) - 1
    if intervals < WINDOW_CHUNKS // 2:
        return None
    per_chunk = completion_tokens / len(delta_ms) if completion_tokens else 1.0
    rates = []
    for start in range(0, intervals, WINDOW_CHUNKS):
        end = min(start + WINDOW_CHUNKS, intervals)
        seconds = (delta_ms[end] - delta_ms[start]) / 1000.0
        if end - start < WINDOW_CHUNKS // 2 or seconds <= 0:
            break
        rates.append(round((end - start) * per_chunk / seconds, 1))
    return {"window_tokens": WINDOW_CHUNKS, "tokens_per_chunk": round(per_chunk, 3), "tokens_per_sec": rates}


def window_positions(profile: dict[str, Any]) -> list[float]:
    """The token position of each window's middle (the x of a rate-against-position plot)."""
    step = profile["window_tokens"] * profile["tokens_per_chunk"]
    return [(index + 0.5) * step for index in range(len(profile["tokens_per_sec"]))]
