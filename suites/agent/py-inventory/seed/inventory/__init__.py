"""Inventory: items, stock, and reports."""
