"""Runtime layer: the Machine (coordinator), CPU processes, pinning, lifecycle."""
