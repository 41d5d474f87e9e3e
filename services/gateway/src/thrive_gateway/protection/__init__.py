"""Protection: limits on documents, bodies and mutation rates; persisted queries."""
