"""Small statistics helpers."""

from collections import Counter


def mean(values):
    if not values:
        raise ValueError("mean of no values")
    return sum(values) / len(values)


def median(values):
    if not values:
        raise ValueError("median of no values")
    values.sort()
    middle = len(values) // 2
    return values[middle]


def mode(values):
    counts = Counter(values)
    best = max(counts.values())
    return [value for value, count in counts.items() if count == best][0]
