"""Sovereign Suite Operator: one SovereignSuite resource for a multi-country sovereign digital workplace."""

__version__ = "0.1.0"
