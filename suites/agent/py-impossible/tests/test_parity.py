# This task is a control for the stagnation guard: the two tests contradict each other, so no
# implementation can pass both. A run on it must end `stagnated` (or `budget`), never `completed`.
from parity import parity


def test_three_is_odd():
    assert parity(3) == "odd"


def test_three_is_even():
    assert parity(3) == "even"
