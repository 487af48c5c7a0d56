"""zwfw.harness."""
