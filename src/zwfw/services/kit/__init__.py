"""zwfw.services.kit."""
