"""The hub's domain logic, a module per concern: functions of plain arguments and a database
session (never a request), called by the routes in ``zwfw.services.hub.api``."""
