"""Thrive gateway service."""
