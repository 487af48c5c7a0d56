"""zwfw.crypto."""
