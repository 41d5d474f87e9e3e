"""Adapters: how recognition talks to Postgres."""
