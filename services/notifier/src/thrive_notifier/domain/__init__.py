"""The notifier's business rules: pure, synchronous, no I/O."""
