"""Code shared by Thrive services."""
