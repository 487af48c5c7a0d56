"""The province's service hall (政务服务大厅): item catalog (事项目录), cases (办件), evaluations
(好差评) with rectification, and the discovery document ``/.well-known/zwfw``.

Scopes: ``hall:catalog:write`` (edit and publish items), ``hall:case:handle`` (take case
steps, see every case), ``hall:rectification`` (close 差评 rectification tasks). Applicants use
their own token from ``identity`` (claims ``sub`` and ``user_type``); they see only their own
cases. The same token is forwarded to ``elicense`` for 免证办 materials, so it must carry the
e-licence library's audience too.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from zwfw.services.hall.api import ROUTERS
from zwfw.services.hall.hub import build_dispatcher
from zwfw.services.hall.runtime import build_runtime
from zwfw.services.hall.settings import HallSettings
from zwfw.services.kit import ServiceDefinition, create_app

VERSION = "1.0.0"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def build(settings: HallSettings) -> FastAPI:
    hall = build_runtime(settings)

    def start_reporting(app: FastAPI) -> None:
        if hall.dispatcher is not None:
            hall.dispatcher.start()

    async def close(app: FastAPI) -> None:
        if hall.dispatcher is not None:
            await hall.dispatcher.stop()
        if hall.elicense is not None:
            hall.elicense.close()

    app = create_app(
        settings,
        title="hall",
        version=VERSION,
        description="The province's service hall: item catalog (事项目录), cases (办件), "
        "evaluations (好差评) and the discovery document.",
        routers=ROUTERS,
        migrations=MIGRATIONS,
        on_startup=[start_reporting],
        on_shutdown=[close],
    )
    app.state.hall = hall
    hall.dispatcher = build_dispatcher(app, settings)
    return app


SERVICE = ServiceDefinition(name="hall", settings_class=HallSettings, factory=build)

__all__ = ["MIGRATIONS", "SERVICE", "VERSION", "HallSettings", "build"]
