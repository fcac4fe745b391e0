import pytest

from inventory.item import Item
from inventory.report import format_report, total_value_cents
from inventory.stock import Stock

PEN = Item("A1", "Pen", 150)
PAD = Item("B2", "Pad", 299)


def test_item_refuses_negative_price():
    with pytest.raises(ValueError):
        Item("X", "Broken", -1)


def test_add_and_quantity():
    stock = Stock()
    stock.add(PEN, 2)
    stock.add(PEN, 1)
    assert stock.quantity("A1") == 3
    assert stock.quantity("ZZ") == 0
    with pytest.raises(ValueError):
        stock.add(PEN, 0)


def test_remove_rules():
    stock = Stock()
    stock.add(PAD, 2)
    with pytest.raises(ValueError):
        stock.remove("B2", 3)
    assert stock.quantity("B2") == 2
    stock.remove("B2", 2)
    assert stock.items() == []


def test_items_sorted_by_sku():
    stock = Stock()
    stock.add(PAD, 1)
    stock.add(PEN, 4)
    assert stock.items() == [(PEN, 4), (PAD, 1)]


def test_total_value():
    stock = Stock()
    stock.add(PEN, 3)
    stock.add(PAD, 2)
    assert total_value_cents(stock) == 450 + 598


def test_report_lines():
    stock = Stock()
    assert format_report(stock) == ""
    stock.add(PAD, 2)
    stock.add(PEN, 3)
    assert format_report(stock) == "A1 Pen x3 = 4.50\nB2 Pad x2 = 5.98"
