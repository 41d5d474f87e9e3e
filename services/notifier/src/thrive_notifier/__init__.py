"""Thrive notifier service."""
