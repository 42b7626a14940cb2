"""Who may talk to the dashboard: Host and Origin checks, no CORS, the token off loopback."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest

from oisp_sensor.config import Config
from oisp_sensor.counters import Counters
from oisp_sensor.pipeline import Pipeline
from oisp_sensor.privacy.redact import build_redactor
from oisp_sensor.sensor import build_pipeline
from oisp_sensor.sinks.store import StoreSink
from oisp_sensor.web.api import WebContext
from oisp_sensor.web.app import Dashboard, create_app
from oisp_sensor.web.live import LiveFeed
from oisp_sensor.web.security import CSP, AccessPolicy
from oisp_sensor.web.server import WebServer
from oisp_sensor.web.settings import Settings
from tests.helpers import HASHER
from tests.unit.web.conftest import Served, route_table


def non_loopback_ipv4() -> str | None:
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                return str(a.address)
    return None


HOST_IP = non_loopback_ipv4()
needs_interface = pytest.mark.skipif(
    HOST_IP is None, reason="this machine has no non-loopback IPv4 address to bind to"
)


@pytest.mark.parametrize(
    "host",
    ["evil.example:{port}", "evil.example", "127.0.0.1:1", "127.0.0.1", "localhost.evil:{port}"],
)
async def test_foreign_host_is_421(api: Served, host: str) -> None:
    """A DNS-rebinding page reaches us under its own name: refused."""
    response = await api.client.get(
        "/api/events", headers={"Host": host.format(port=api.client.port)}
    )
    assert response.status == 421
    assert "Host" in (await response.json())["error"]


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}"])
async def test_own_names_are_accepted(api: Served, host: str) -> None:
    response = await api.client.get(
        "/api/health", headers={"Host": host.format(port=api.client.port)}
    )
    assert response.status == 200


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "http://127.0.0.1:1",
        "null",
        "file://",
        "http://localhost.evil:{port}",
    ],
)
async def test_foreign_origin_is_403(api: Served, origin: str) -> None:
    origin = origin.format(port=api.client.port)
    for method, path in (("GET", "/api/events"), ("PUT", "/api/settings")):
        response = await api.client.request(
            method, path, headers={"Origin": origin}, json={"retention_days": 1}
        )
        assert response.status == 403, (method, origin)
    assert not (api.ctx.settings and api.ctx.settings.path.exists())


async def test_own_origin_is_accepted(api: Served) -> None:
    response = await api.client.get("/api/health", headers={"Origin": api.origin})
    assert response.status == 200


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
@pytest.mark.parametrize("path", ["/api/events", "/api/live", "/static/app.js"])
async def test_other_sites_fetch_metadata_is_403(api: Served, site: str, path: str) -> None:
    """A no-cors request (an <img> or <script> tag) carries no Origin, but the browser
    still says where it comes from."""
    for mode in ("no-cors", "navigate"):
        response = await api.client.get(
            path, headers={"Sec-Fetch-Site": site, "Sec-Fetch-Mode": mode}
        )
        assert response.status == 403, (site, path, mode)


async def test_own_and_typed_requests_pass_fetch_metadata(api: Served) -> None:
    for site in ("same-origin", "none"):
        response = await api.client.get("/api/events", headers={"Sec-Fetch-Site": site})
        assert response.status == 200


async def test_a_link_from_another_site_opens_the_page(api: Served) -> None:
    headers = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    response = await api.client.get("/", headers=headers)
    assert response.status == 200
    assert response.headers["X-Frame-Options"] == "DENY"  # shown, never framed
    posted = await api.client.post("/", headers=headers)
    assert posted.status == 403


async def test_a_cookie_without_origin_cannot_change_anything(api: Served) -> None:
    """Browsers always send Origin on POST/PUT; a cookie-bearing request without one is
    not from the page we served."""
    cookie = {api.policy.cookie_name: "whatever"}
    response = await api.client.put("/api/settings", json={"retention_days": 1}, cookies=cookie)
    assert response.status == 403
    assert not (api.ctx.settings and api.ctx.settings.path.exists())


async def test_no_cors_header_is_ever_sent(api: Served) -> None:
    requests: list[tuple[str, str, dict[str, str]]] = [
        ("GET", "/api/events", {"Origin": api.origin}),
        ("GET", "/api/events", {"Origin": "http://evil.example"}),
        (
            "OPTIONS",
            "/api/settings",
            {"Origin": "http://evil.example", "Access-Control-Request-Method": "PUT"},
        ),
        (
            "OPTIONS",
            "/api/settings",
            {"Origin": api.origin, "Access-Control-Request-Method": "PUT"},
        ),
        ("GET", "/", {}),
        ("GET", "/static/app.js", {"Origin": api.origin}),
        ("GET", "/api/openapi.json", {}),
        ("GET", "/api/nothing-here", {}),
    ]
    for method, path, headers in requests:
        response = await api.client.request(method, path, headers=headers)
        cors = [h for h in response.headers if h.lower().startswith("access-control-")]
        assert not cors, (method, path, response.status, cors)


async def test_security_headers_on_page_and_api(api: Served) -> None:
    page = await api.client.get("/")
    assert page.status == 200
    assert page.headers["Content-Security-Policy"] == CSP
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    api_response = await api.client.get("/api/health")
    assert api_response.headers["Cache-Control"] == "no-store"
    assert api_response.headers["Content-Security-Policy"] == CSP
    missing = await api.client.get("/api/events/nope")
    assert missing.headers["X-Content-Type-Options"] == "nosniff"


# --- a non-loopback bind needs the token -----------------------------------------------------


class Remote:
    def __init__(self, base: str, policy: AccessPolicy) -> None:
        self.base = base
        self.policy = policy


@pytest.fixture
async def remote(api: Served) -> AsyncIterator[Remote]:
    """The same API served on this machine's network address, with a token."""
    assert HOST_IP is not None
    policy = AccessPolicy(HOST_IP, 0, token="s3cret-token-for-tests")
    server = WebServer(create_app(api.ctx, policy), HOST_IP, 0)
    await server.start()
    policy.set_port(server.port)
    try:
        yield Remote(f"http://{HOST_IP}:{server.port}", policy)
    finally:
        await server.close()


async def _get(url: str, **kwargs: Any) -> tuple[int, dict[str, Any] | None, Any]:
    jar = kwargs.pop("jar", None)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        async with session.get(url, allow_redirects=False, **kwargs) as response:
            body = await response.json() if response.content_type == "application/json" else None
            return response.status, body, response


@needs_interface
async def test_non_loopback_bind_requires_the_token(remote: Remote) -> None:
    status, body, _ = await _get(f"{remote.base}/api/health")
    assert status == 401
    assert body and "token" in body["error"]
    status, _, _ = await _get(f"{remote.base}/", headers={})
    assert status == 401
    status, _, _ = await _get(
        f"{remote.base}/api/health", headers={"Authorization": "Bearer wrong-token"}
    )
    assert status == 401
    status, body, _ = await _get(
        f"{remote.base}/api/health", headers={"Authorization": "Bearer s3cret-token-for-tests"}
    )
    assert status == 200 and body and body["status"] == "ok"


@needs_interface
async def test_token_link_sets_a_cookie_and_drops_the_token_from_the_url(remote: Remote) -> None:
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for a bare IP address
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        async with session.get(
            f"{remote.base}/?token=s3cret-token-for-tests", allow_redirects=False
        ) as response:
            assert response.status == 303
            assert response.headers["Location"] == "/"
            cookie = response.cookies[remote.policy.cookie_name]
            assert cookie["httponly"] and cookie["samesite"] == "Strict"
        async with session.get(f"{remote.base}/") as response:
            assert response.status == 200
            assert "oisp-sensor" in await response.text()
        async with session.get(f"{remote.base}/api/health") as response:
            assert response.status == 200
        # The page's own WebSocket: same origin, cookie attached.
        async with session.ws_connect(
            f"{remote.base}/api/live", headers={"Origin": remote.base}
        ) as ws:
            assert not ws.closed
        # The cookie does not help a request without Origin change anything.
        async with session.post(f"{remote.base}/api/capture", json={"paused": True}) as response:
            assert response.status == 403


@needs_interface
async def test_loopback_is_not_served_when_bound_elsewhere(remote: Remote) -> None:
    port = remote.base.rsplit(":", 1)[1]
    with pytest.raises(aiohttp.ClientConnectionError):
        await _get(f"http://127.0.0.1:{port}/api/health")


@needs_interface
async def test_dashboard_generates_a_token_for_a_non_loopback_bind(tmp_path: Path) -> None:
    assert HOST_IP is not None
    config = Config().replace("web", bind=HOST_IP, port=0)
    dashboard = Dashboard(config, Counters(), db_path=None, config_path=tmp_path / "c.toml")
    assert dashboard.token_generated and len(dashboard.token) >= 24
    loopback = Dashboard(Config(), Counters(), db_path=None, config_path=tmp_path / "c.toml")
    assert not loopback.token and not loopback.policy.requires_token
    given = Dashboard(
        config.replace("web", token="mine-0123456789"),
        Counters(),
        db_path=None,
        config_path=tmp_path / "c.toml",
    )
    assert given.token == "mine-0123456789" and not given.token_generated


def test_wildcard_bind_accepts_this_machines_addresses_only() -> None:
    policy = AccessPolicy("0.0.0.0", 7777, token="t")
    assert policy.requires_token
    assert policy.host_ok("127.0.0.1:7777")
    if HOST_IP:
        assert policy.host_ok(f"{HOST_IP}:7777")
    assert policy.host_ok(f"{socket.gethostname()}:7777")
    assert not policy.host_ok("evil.example:7777")
    assert not policy.host_ok(f"{HOST_IP or '127.0.0.1'}:7778")


async def test_websocket_from_another_origin_is_refused(api: Served) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await api.client.ws_connect("/api/live", headers={"Origin": "http://evil.example"})
    assert caught.value.status == 403


# --- every state-changing route is guarded alike ---------------------------------------------

# What each state-changing route is sent; a new one must be added here (see the next test).
# PUT /api/settings can switch redaction to "full": it must be guarded like every other.
STATE_CHANGES: dict[tuple[str, str], dict[str, Any]] = {
    ("PUT", "/api/settings"): {"redaction_mode": "full"},
    ("POST", "/api/capture"): {"paused": True},
}
TOKEN = "s3cret-token-for-tests"


def test_every_state_changing_route_is_in_the_matrix() -> None:
    ctx = WebContext(config=Config(), db_path=None, live=LiveFeed(Counters()))
    app = create_app(ctx, AccessPolicy("127.0.0.1", 7777))
    changing = {(m, p) for m, p in route_table(app) if m not in ("GET", "HEAD", "OPTIONS")}
    assert changing == set(STATE_CHANGES)


class Controlled:
    """A running pipeline with editable settings, served with a given access policy."""

    def __init__(self, base: str, policy: AccessPolicy, pipeline: Pipeline, config: Path) -> None:
        self.base = base
        self.policy = policy
        self.pipeline = pipeline
        self.config = config

    @property
    def origin(self) -> str:
        return self.base

    def unchanged(self) -> bool:
        redactor = self.pipeline.redactor
        return (
            not self.pipeline.paused
            and redactor is not None
            and redactor.mode == "safe"  # type: ignore[attr-defined]
            and not self.config.exists()
        )


@pytest.fixture(params=["loopback", "loopback+token", "network+token"])
async def controlled(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Controlled]:
    if request.param == "network+token" and HOST_IP is None:
        pytest.skip("this machine has no non-loopback IPv4 address to bind to")
    bind = HOST_IP if request.param.startswith("network") and HOST_IP else "127.0.0.1"
    token = TOKEN if request.param.endswith("+token") else ""
    counters = Counters()
    feed = LiveFeed(counters)
    pipeline = build_pipeline(
        Config(), sinks=[StoreSink(tmp_path / "events.db"), feed], counters=counters, hasher=HASHER
    )
    await pipeline.start()
    config_path = tmp_path / "config.toml"

    def switch_redaction(mode: str) -> None:  # what the sensor does with a new mode
        pipeline.redactor = build_redactor(mode, HASHER, counters=counters)

    settings = Settings(Config(), config_path, on_redaction=switch_redaction)
    ctx = WebContext(
        config=Config(),
        db_path=tmp_path / "events.db",
        live=feed,
        pipeline=pipeline,
        settings=settings,
    )
    policy = AccessPolicy(bind, 0, token=token)
    server = WebServer(create_app(ctx, policy), bind, 0)
    await server.start()
    policy.set_port(server.port)
    try:
        yield Controlled(f"http://{bind}:{server.port}", policy, pipeline, config_path)
    finally:
        await server.close()
        await pipeline.stop()


async def _send(
    c: Controlled, method: str, path: str, body: dict[str, Any], headers: dict[str, str]
) -> int:
    async with aiohttp.ClientSession() as session:
        async with session.request(
            method, c.base + path, json=body, headers=headers, allow_redirects=False
        ) as response:
            return response.status


@pytest.mark.parametrize(("method", "path"), list(STATE_CHANGES))
async def test_state_changing_routes_refuse_what_every_route_refuses(
    controlled: Controlled, method: str, path: str
) -> None:
    """Host, Origin, Fetch Metadata and (where required) the token: each check alone stops
    a change to capture or to the settings (redaction mode included), on every policy."""
    c = controlled
    body = STATE_CHANGES[(method, path)]
    auth = {"Authorization": f"Bearer {TOKEN}"} if c.policy.requires_token else {}
    port = c.base.rsplit(":", 1)[1]
    refused: list[tuple[str, dict[str, str], int]] = [
        ("foreign Host", {**auth, "Origin": c.origin, "Host": f"evil.example:{port}"}, 421),
        ("foreign Origin", {**auth, "Origin": "http://evil.example"}, 403),
        ("another port", {**auth, "Origin": f"http://127.0.0.1:{int(port) + 1}"}, 403),
        ("cross-site", {**auth, "Sec-Fetch-Site": "cross-site"}, 403),
        ("same-site", {**auth, "Sec-Fetch-Site": "same-site"}, 403),
        # A browser always sends Origin on POST/PUT: a cookie without one is refused, even
        # the right one.
        ("cookie, no Origin", {"Cookie": f"{c.policy.cookie_name}={TOKEN}"}, 403),
    ]
    if c.policy.requires_token:
        refused += [
            ("no token", {"Origin": c.origin}, 401),
            ("wrong token", {"Origin": c.origin, "Authorization": "Bearer nope"}, 401),
        ]
    for what, headers, status in refused:
        got = await _send(c, method, path, body, headers)
        assert got == status, (what, got)
        assert c.unchanged(), what
    # The same request, sent as the page sends it, does change things.
    assert await _send(c, method, path, body, {**auth, "Origin": c.origin}) == 200
    assert not c.unchanged()
