"""zwfw.codes."""
