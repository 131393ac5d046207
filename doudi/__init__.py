"""Doudi (兜底): the safety net against poverty caused by illness."""

__version__ = "0.1.0"
