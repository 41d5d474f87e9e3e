"""Entry points: HTTP routes, Kafka handlers, the CLI. Thin: parse, call the service layer."""
