"""Thrive's benchmarks: run with `uv run python -m tests.bench.run [NAME]` (see run.py)."""
