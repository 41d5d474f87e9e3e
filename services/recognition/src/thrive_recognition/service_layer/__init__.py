"""Use cases: one function per command, orchestrating the domain and the repository."""
