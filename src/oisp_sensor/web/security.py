"""Who may talk to the dashboard: DNS rebinding, cross-site requests and remote access.

- Host must name this server (a rebinding attack arrives with the attacker's name).
- A request that carries an Origin must come from this server's own origin, and a
  browser request that changes state or opens the live feed must carry one (browsers
  always send it on POST/PUT and WebSocket handshakes), so another site can neither
  read nor act. Requests a browser marks `Sec-Fetch-Site: cross-site` or `same-site`
  (another port or subdomain: a local dev server) are refused, except following a link
  to the page itself.
- No CORS headers are ever sent.
- Bound to anything but loopback, every request needs the token: `Authorization:
  Bearer <token>`, or the HttpOnly cookie set by opening `/?token=<token>` once (the
  page then redirects to `/`, so the token does not stay in the address bar).
- Every answer carries a strict Content-Security-Policy; API answers are never cached
  (they hold prompts).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import socket
from dataclasses import dataclass, field

import psutil

from oisp_sensor.web.server import Handler, Middleware, Request, Response

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_WILDCARDS = ("0.0.0.0", "::", "")

CSP = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


def local_addresses() -> list[str]:
    """This machine's interface addresses and names: what a browser may call a 0.0.0.0 bind."""
    out: list[str] = []
    try:
        out += [
            a.address.split("%", 1)[0]  # without an IPv6 zone (fe80::1%eth0)
            for addrs in psutil.net_if_addrs().values()
            for a in addrs
            if a.family in (socket.AF_INET, socket.AF_INET6)
        ]
    except OSError:
        pass
    out += [name.lower() for name in (socket.gethostname(), socket.getfqdn()) if name]
    return out


def _host_form(name: str) -> str:
    return f"[{name}]" if ":" in name and not name.startswith("[") else name


@dataclass
class AccessPolicy:
    """The names this server answers to, and its token (empty: none needed on loopback)."""

    bind: str
    port: int
    token: str = ""
    extra_hosts: tuple[str, ...] = ()
    allowed: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.set_port(self.port)

    def set_port(self, port: int) -> None:
        """Recompute the allowed Host values (a bind to port 0 learns its port at start)."""
        self.port = port
        names = {"127.0.0.1", "localhost", "[::1]"}
        if self.bind in _WILDCARDS:
            names.update(_host_form(a) for a in local_addresses())
        elif not is_loopback(self.bind):
            names.add(_host_form(self.bind))
        names.update(h.lower() for h in self.extra_hosts)
        allowed = {f"{n}:{port}" for n in names}
        if port == 80:
            allowed |= names
        self.allowed = frozenset(allowed)

    @property
    def cookie_name(self) -> str:
        # Cookies ignore ports: two sensors on one host must not overwrite each other's.
        return f"oisp_token_{self.port}"

    @property
    def requires_token(self) -> bool:
        return bool(self.token) or not is_loopback(self.bind)

    def host_ok(self, host: str | None) -> bool:
        return host is not None and host.lower() in self.allowed

    def origin_ok(self, origin: str) -> bool:
        scheme, _, rest = origin.partition("://")
        return scheme in ("http", "https") and rest.lower() in self.allowed

    def given_token(self, request: Request) -> str:
        auth = request.headers.get("Authorization") or ""
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return request.cookies.get(self.cookie_name, "") or request.query.get("token") or ""

    def token_ok(self, request: Request) -> bool:
        given = self.given_token(request)
        return bool(self.token) and hmac.compare_digest(given.encode(), self.token.encode())


def _deny(status: int, reason: str) -> Response:
    response = Response.json({"error": reason}, status=status)
    _harden(response.headers, api=True)
    return response


def _harden(headers: dict[str, str], *, api: bool) -> None:
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("Cache-Control", "no-store" if api else "no-cache")


def _opens_the_page(request: Request) -> bool:
    """Following a link to the dashboard from elsewhere: harmless (the page holds no data,
    and everything it then loads is same-origin), so it is the one cross-site request
    let through."""
    return (
        request.method == "GET"
        and request.path == "/"
        and request.headers.get("Sec-Fetch-Mode") == "navigate"
    )


def middleware(policy: AccessPolicy) -> Middleware:
    async def check(request: Request, handler: Handler) -> Response:
        if not policy.host_ok(request.headers.get("Host")):
            return _deny(421, "unexpected Host header (DNS rebinding protection)")
        origin = request.headers.get("Origin")
        if origin is not None and not policy.origin_ok(origin):
            return _deny(403, "cross-origin requests are not allowed")
        site = request.headers.get("Sec-Fetch-Site")
        if site in ("cross-site", "same-site") and not _opens_the_page(request):
            return _deny(403, f"{site} requests are not allowed")
        websocket = (request.headers.get("Upgrade") or "").lower() == "websocket"
        if (
            (request.method not in _SAFE_METHODS or websocket)
            and origin is None
            and policy.cookie_name in request.cookies
        ):
            # A browser always sends Origin here; a cookie without one is not a browser
            # we served, so the cookie must not authorise it.
            return _deny(403, "missing Origin header")
        if policy.requires_token and not policy.token_ok(request):
            return _deny(401, "this dashboard needs its token (printed when the sensor started)")
        via_query = policy.requires_token and "token" in request.query
        if via_query and request.method == "GET" and request.path == "/":
            # Trade the token in the address bar for a cookie, and drop it from the URL.
            response = Response(303, headers={"Location": "/"})
        else:
            response = await handler(request)  # errors too: they are answers, not exceptions
        if via_query:
            response.set_cookie(policy.cookie_name, policy.token, samesite="Strict", path="/")
        if response.status != 101:  # a WebSocket has already sent its headers
            _harden(response.headers, api=request.path.startswith("/api/"))
        return response

    return check
