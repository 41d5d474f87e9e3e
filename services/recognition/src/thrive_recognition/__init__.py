"""Thrive recognition service."""
