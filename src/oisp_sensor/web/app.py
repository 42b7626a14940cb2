"""The dashboard's routes behind its access checks, and `Dashboard`, which the sensor runs.

The page is plain HTML, CSS and JavaScript modules in `static/` (no build step, no
CDN: it works offline), and talks only to the API and the live WebSocket.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from oisp_sensor.config import Config
from oisp_sensor.counters import Counters
from oisp_sensor.pipeline import Pipeline
from oisp_sensor.web.api import WebContext, routes
from oisp_sensor.web.live import LiveFeed
from oisp_sensor.web.security import AccessPolicy, is_loopback, middleware, new_token
from oisp_sensor.web.server import (
    App,
    Request,
    Response,
    Route,
    WebServer,
    file_response,
    static_files,
)
from oisp_sensor.web.settings import Settings

__all__ = ["OPENAPI", "STATIC", "Dashboard", "create_app"]

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
OPENAPI = Path(__file__).parent / "openapi.json"


async def _index(request: Request) -> Response:
    return file_response(request, STATIC / "index.html")


async def _openapi(request: Request) -> Response:
    return file_response(request, OPENAPI, "application/json")


def create_app(ctx: WebContext, policy: AccessPolicy) -> App:
    app = App(
        [
            *routes(ctx),
            Route("GET", "/", _index),
            Route("GET", "/api/openapi.json", _openapi),
            Route("GET", "/static/{path:.+}", static_files(STATIC)),
        ],
        middleware=middleware(policy),
    )
    app.on_shutdown.append(ctx.live.close)  # open WebSockets would otherwise hold shutdown up
    return app


class Dashboard:
    """The web dashboard of a running sensor: live feed sink, API, page, access rules.

    Created before the pipeline (its `live` feed is one of the pipeline's sinks) and
    started once the pipeline runs. Bound to anything but loopback it needs a token:
    the configured one, or one generated now (`token_generated`) for the banner to print.
    """

    def __init__(
        self,
        config: Config,
        counters: Counters,
        *,
        db_path: Path | None,
        config_path: Path,
    ) -> None:
        self.config = config
        self.db_path = db_path
        self.config_path = config_path
        self.live = LiveFeed(counters)
        web_config = config.web
        self.token = web_config.token
        self.token_generated = False
        if not self.token and not is_loopback(web_config.bind):
            self.token = new_token()
            self.token_generated = True
        self.policy = AccessPolicy(web_config.bind, web_config.port, self.token)
        self.server: WebServer | None = None
        self.context: WebContext | None = None

    async def start(
        self,
        pipeline: Pipeline,
        *,
        ca_status: Callable[[], dict[str, Any]] | None = None,
        extra_status: Callable[[], dict[str, Any]] | None = None,
        on_redaction: Callable[[str], None] | None = None,
        on_retention: Callable[[float], None] | None = None,
        on_capture_change: Callable[[bool], None] | None = None,
        started_at: float | None = None,
    ) -> None:
        """Listen; raises OSError when the address is taken (the caller decides what then)."""
        settings = Settings(
            self.config, self.config_path, on_redaction=on_redaction, on_retention=on_retention
        )
        self.context = WebContext(
            config=self.config,
            db_path=self.db_path,
            live=self.live,
            pipeline=pipeline,
            settings=settings,
            ca_status=ca_status,
            extra_status=extra_status,
            on_capture_change=on_capture_change,
            started_at=started_at or time.time(),
        )
        server = WebServer(
            create_app(self.context, self.policy),
            self.config.web.bind,
            self.config.web.port,
            counters=self.live.counters,
        )
        await server.start()
        self.policy.set_port(server.port)
        self.server = server

    @property
    def url(self) -> str:
        """The dashboard's address, without the token (safe for state files and logs)."""
        return self.server.url if self.server is not None else ""

    @property
    def login_url(self) -> str:
        """The address to open first: with `?token=` when one is needed (print, never log)."""
        if not self.url or not self.policy.requires_token:
            return self.url
        return f"{self.url}?token={self.token}"

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()
            self.server = None
