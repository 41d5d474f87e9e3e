"""Adapters: Postgres, webhooks, email."""
