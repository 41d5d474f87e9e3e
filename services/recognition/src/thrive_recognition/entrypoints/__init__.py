"""Thin entry points: HTTP routes and Kafka handlers turn bytes into commands."""
