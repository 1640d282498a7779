"""Code shared by every stage: params, atomic I/O, sources, features, models, tracking."""
