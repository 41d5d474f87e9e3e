"""Errors the devstack reports to people, each one sentence they can act on."""


class StackError(RuntimeError):
    """The stack could not be brought into the requested state; the message says why."""


class PrerequisiteError(StackError):
    """A tool the local stack needs (Java, Maven) is missing or too old."""
