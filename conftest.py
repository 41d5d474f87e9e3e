"""Root conftest: every test gets Thrive's fixtures (stack, database_url, topic_factory)."""

pytest_plugins = ["thrive_shared.testing"]
