"""threadlab lessons: one standalone teaching program per file (see lessons/kit for their helpers)."""
