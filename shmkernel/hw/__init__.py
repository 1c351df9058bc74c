"""Hardware layer: real atomics and fences through libatomic (ctypes)."""
