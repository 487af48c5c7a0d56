"""zwfw: reference deployment and certification harness for provincial government-service
platforms."""

__version__ = "0.1.0"
