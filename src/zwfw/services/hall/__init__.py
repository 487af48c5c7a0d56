"""The province's service hall (政务服务大厅): item catalog (事项目录), cases (办件), evaluations
(好差评) with rectification, and the discovery document ``/.well-known/zwfw``.

Scopes: ``hall:catalog:write`` (edit and publish items), ``hall:case:handle`` (take case
steps, see every case), ``hall:rectification`` (close 差评 rectification tasks). Applicants use
their own token from ``identity`` (claims ``sub`` and ``user_type``); they see only their own
cases. The same token is forwarded to ``elicense`` for 免证办 materials, so it must carry the
e-licence library's audience too.
"""

from __future__ import annotations

from zwfw.services.hall.app import build
from zwfw.services.hall.settings import HallSettings
from zwfw.services.kit import ServiceDefinition

SERVICE = ServiceDefinition(name="hall", settings_class=HallSettings, factory=build)

__all__ = ["SERVICE", "HallSettings", "build"]
