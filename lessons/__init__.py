"""threadlab lessons: one standalone teaching program per file (helpers in lessons/kit)."""
