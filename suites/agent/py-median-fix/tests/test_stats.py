import pytest

from stats import mean, median, mode


def test_mean():
    assert mean([1, 2, 3, 4]) == 2.5


def test_median_odd_and_unsorted():
    assert median([5, 1, 3]) == 3


def test_median_even_and_input_untouched():
    values = [4, 1, 3, 2]
    assert median(values) == 2.5
    assert values == [4, 1, 3, 2]


def test_mode_tie_takes_smallest():
    assert mode([3, 3, 1, 1, 2]) == 1
    assert mode([7]) == 7


def test_empty_raises():
    for function in (mean, median, mode):
        with pytest.raises(ValueError):
            function([])
