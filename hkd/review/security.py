"""What keeps the review page safe on a shared workstation, as one ASGI middleware in front of it:

* **Host check** against DNS rebinding: only the names it is served under are answered (403).
* **Token**: a ``?token=`` visit sets an HttpOnly, SameSite=Strict session cookie and redirects to
  the same URL without the token; every other request needs the cookie or ``Authorization:
  Bearer TOKEN`` (401).
* **Writes**: a PUT/POST/PATCH/DELETE from another origin (``Origin``, else ``Referer``) is
  refused (403), and its body must be JSON (415), so no cross-site form can post to it.
* **Headers** on every answer: a Content-Security-Policy allowing only the page's own scripts,
  styles and images, ``nosniff``, ``no-referrer`` (the token never leaks), no framing, and
  ``Cache-Control: no-store`` on the API (patient images and marks).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from urllib.parse import urlencode, urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK = ("127.0.0.1", "localhost", "::1")
SESSION_COOKIE = "hkd_review_session"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def host_name(host_header: str) -> str:
    """``[::1]:8765`` -> ``::1``, ``LocalHost:80`` -> ``localhost``."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def session_value(token: str) -> str:
    """The cookie's value: derived from the token, so the token itself is never stored."""
    return hmac.new(token.encode(), b"hkd-review-session", hashlib.sha256).hexdigest()


def refuse(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


class ReviewGuard:
    """The checks above, before any handler runs. ``token=None`` serves without one (loopback)."""

    def __init__(self, app: ASGIApp, hosts: Iterable[str], token: str | None) -> None:
        self.app = app
        self.hosts = {host_name(h) for h in hosts}
        self.token = token
        self.session = session_value(token) if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope["path"].startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    headers[key] = value
                if api:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        answer = self.check(Request(scope))
        if answer is not None:
            await answer(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def check(self, request: Request) -> Response | None:
        """A refusal or a redirect, or None when the request may reach the page."""
        if host_name(request.headers.get("host", "")) not in self.hosts:
            return refuse(403, "refused: unknown Host (the page answers only the names it is served under)")
        if self.token is not None:
            given = request.query_params.get("token")
            if given is not None and request.method == "GET":
                return self.open_session(request, given)
            if not self.authenticated(request):
                return refuse(401, "missing or wrong access token: open the URL with ?token= that "
                                   "`hkd review` printed")
        if request.method in WRITE_METHODS:
            if not self.same_origin(request):
                return refuse(403, "refused: a change from another origin")
            if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
                return refuse(415, "a change must be sent as application/json")
        return None

    def open_session(self, request: Request, given: str) -> Response:
        """A valid ``?token=``: set the session cookie and drop the token from the address bar."""
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return refuse(401, "wrong access token")
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(SESSION_COOKIE, self.session, httponly=True, samesite="strict", path="/")
        return response

    def authenticated(self, request: Request) -> bool:
        cookie = request.cookies.get(SESSION_COOKIE, "")
        if cookie and hmac.compare_digest(cookie.encode(), self.session.encode()):
            return True
        header = request.headers.get("authorization", "")
        bearer = header[7:] if header.lower().startswith("bearer ") else ""
        return bool(bearer) and hmac.compare_digest(bearer.encode(), self.token.encode())

    @staticmethod
    def same_origin(request: Request) -> bool:
        """No ``Origin``/``Referer`` (a script or curl with the token) passes; a browser's must be ours."""
        own = f"{request.url.scheme}://{request.headers.get('host', '')}".lower()
        origin = request.headers.get("origin")
        if origin is None and request.headers.get("referer"):
            parts = urlsplit(request.headers["referer"])
            origin = f"{parts.scheme}://{parts.netloc}"
        return origin is None or origin.lower() == own
