"""Thrive leaderboard service."""
