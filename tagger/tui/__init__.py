"""epsilon-tag tui: browse the library, search it, and grow its vocabulary (Textual)."""
