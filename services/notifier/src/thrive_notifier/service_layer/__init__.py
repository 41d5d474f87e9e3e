"""Use cases: orchestrate the domain over a repository and senders."""
