"""Helpers for cross-service tests: in-process receivers the real services send to."""
