"""Recognition's business rules: plain Python, no I/O, no framework imports."""
