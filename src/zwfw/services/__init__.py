"""zwfw.services."""
