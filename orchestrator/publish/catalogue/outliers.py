"""Robust outliers among comparable runs (issue #26 §2).

Runs are comparable when they share hardware class, model digest, quant, runtime and knob set (a
run cell's group key). In a group of at least `min_group`, a cell's decode rate is marked when its
modified z-score, 0.6745 * (rate - median) / MAD, is beyond `modified_z` either way (Iglewicz and
Hoaglin): the median and the median absolute deviation ignore the outliers they look for, as a mean
and standard deviation would not. The MAD is floored at `mad_floor` x the median, so that a group of
near-identical rates does not mark a run a few percent away.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from typing import Any, Hashable

from orchestrator.publish.catalogue.settings import OutlierRule

MAD_TO_SIGMA = 0.6745  # the MAD of a normal distribution is 0.6745 standard deviations


def group_key(row: dict[str, Any]) -> str:
    """What makes two run cells comparable, as a short digest (an index column kept for every cell)."""
    described = json.dumps([row.get(name) for name in ("hardware_class", "model_digest", "quant", "runtime", "knobs")])
    return hashlib.blake2b(described.encode(), digest_size=12).hexdigest()


def outlier_marks(rates: dict[Hashable, float], rule: OutlierRule) -> dict[Hashable, str]:
    """The marked members of one group (member -> the reason), from each member's decode rate."""
    if len(rates) < rule.min_group:
        return {}
    median = statistics.median(rates.values())
    mad = max(statistics.median(abs(rate - median) for rate in rates.values()), rule.mad_floor * abs(median))
    if mad <= 0:
        return {}
    marks = {}
    for member, rate in rates.items():
        z = MAD_TO_SIGMA * (rate - median) / mad
        if abs(z) > rule.modified_z:
            marks[member] = (f"decode {rate:.1f} tok/s is {'above' if z > 0 else 'below'} the median {median:.1f} of "
                             f"{len(rates)} comparable runs (modified z {z:+.1f}, mark {rule.modified_z:g})")
    return marks
