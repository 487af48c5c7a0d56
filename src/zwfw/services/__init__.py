"""zwfw.services: the product services and the kit they are built on.

``SERVICES`` maps a product service name to the ``"module:attribute"`` path of its
``zwfw.services.kit.ServiceDefinition``; ``zwfw serve NAME`` and ``zwfw migrate NAME`` look
names up here. Each product service adds its own line when it lands, e.g.
``"hall": "zwfw.services.hall:SERVICE"``.
"""

from __future__ import annotations

SERVICES: dict[str, str] = {}
SERVICES["identity"] = "zwfw.services.identity:SERVICE"
SERVICES["hall"] = "zwfw.services.hall:SERVICE"
SERVICES["eseal"] = "zwfw.services.eseal:SERVICE"
SERVICES["elicense"] = "zwfw.services.elicense:SERVICE"
SERVICES["hub"] = "zwfw.services.hub:SERVICE"
