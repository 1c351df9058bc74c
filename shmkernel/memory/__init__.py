"""Memory layer: the shared segment, its declarative layout and numpy views."""
