"""The dashboard's aiohttp application: routes, the login and CSRF middleware, the pages and the
server-sent event stream.

    create_app(redis, roster)            the application (tests drive it with aiohttp's client)
    start_dashboard(settings, redis)     serve it on settings.dashboard_host:dashboard_port
    login_url(settings, token)           what `wenzhen team login-link` prints

Pages render on the server (Jinja2, autoescaped); `static/live.js` only listens to `/events` and
swaps in fresh fragments. Every POST needs the session's CSRF token and an Origin (or Referer)
naming this host. Nothing a patient or a doctor wrote, and no token or password, is logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlencode, urlsplit

import jinja2
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from redis.asyncio import Redis

from dashboard.auth import (
    FAILURES_ALLOWED,
    SESSION_COOKIE,
    SESSION_SECONDS,
    Flash,
    Sessions,
    WebSession,
    csrf_matches,
    same_origin,
    verify_password,
)
from dashboard.live import LiveFeed
from dashboard.views import (
    LEVELS_DESCENDING,
    REASON_LABELS,
    SINCE_CHOICES,
    STATUS_CHOICES,
    Filters,
    age_text,
    level_label,
    reasoning,
    sort_tickets,
    timeline,
)
from dialog.team import Action, Member, Refusal, Roster, Team, Ticket
from storage.redis_store import RedisStore
from storage.rules_history import RulesHistory
from storage.team_board import TeamBoard

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
NOTE_MAX = 2000
CASE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
EXPIRED_FORM = "The form has expired or did not come from this dashboard: reload the page and try again."
ROLE_NAMES = {"patient": "Patient", "bot": "Bot", "doctor": "Doctor", "system": "System"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Visitor:
    """Who sent the request being handled (set by the middleware for every page and action)."""

    session: WebSession | None = None
    member: Member | None = None
    team: Team | None = None


_visitor: ContextVar[Visitor] = ContextVar("dashboard_visitor")


RULES_EVENTS_SHOWN = 20


def visitor() -> Visitor:
    return _visitor.get(None) or Visitor()


class DashboardSettings(Protocol):
    """What the dashboard reads from the settings (`bot.config.Settings` has all of it)."""

    @property
    def dashboard_host(self) -> str: ...

    @property
    def dashboard_port(self) -> int: ...

    @property
    def dashboard_public_url(self) -> str | None: ...

    @property
    def dashboard_secure_cookies(self) -> bool: ...

    @property
    def roster(self) -> Roster: ...


def base_url(settings: DashboardSettings) -> str:
    if settings.dashboard_public_url:
        return settings.dashboard_public_url.rstrip("/")
    host = settings.dashboard_host
    if host in ("", "0.0.0.0", "::"):
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.dashboard_port}"


def login_url(settings: DashboardSettings, token: str) -> str:
    return f"{base_url(settings)}/login/token/{token}"


# ---- the application -----------------------------------------------------------------------------


class Dashboard:
    """The state the handlers share: Redis, the roster, the board, sessions and the live feed."""

    def __init__(
        self,
        redis: Redis,
        roster: Roster,
        *,
        prefix: str = "wz:",
        secure_cookies: bool = False,
        public_url: str | None = None,
        keepalive_seconds: float = 15.0,
    ) -> None:
        self.roster = roster
        self.board = TeamBoard(redis, prefix=prefix)
        self.store = RedisStore(redis, prefix=prefix)
        self.sessions = Sessions(redis, prefix=prefix)
        self.rules_history = RulesHistory(redis, prefix=prefix)
        self.feed = LiveFeed(self.board)
        self.secure_cookies = secure_cookies
        self.public_host = urlsplit(public_url).netloc.lower() if public_url else None
        self.keepalive_seconds = keepalive_seconds
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.globals.update(
            level_label=level_label,
            age_text=age_text,
            reason_labels=REASON_LABELS,
            static_version=_static_version(),
            Action=Action,
            role_names=ROLE_NAMES,
        )

    # ---- plumbing -------------------------------------------------------------------------------

    def render(
        self, request: web.Request, template: str, *, status: int = 200, **context: Any
    ) -> web.Response:
        who = visitor()
        session, member, team = who.session, who.member, who.team
        html = self.templates.get_template(template).render(
            member=member,
            team=team,
            csrf=session.csrf if session else "",
            flashes=context.pop("flashes", []),
            path=request.path,
            **context,
        )
        return web.Response(text=html, content_type="text/html", charset="utf-8", status=status)

    async def page(
        self, request: web.Request, template: str, *, status: int = 200, **context: Any
    ) -> web.Response:
        """A whole page: also shows (and forgets) the session's flash messages."""
        session = visitor().session
        flashes: list[Flash] = []
        if session is not None and session.flash:
            flashes, session.flash = session.flash, []
            await self.sessions.save(session)
        return self.render(request, template, status=status, flashes=flashes, **context)

    async def flash(self, request: web.Request, kind: Literal["ok", "error"], text: str) -> None:
        session = visitor().session
        if session is not None:
            session.flash.append(Flash(kind=kind, text=text))
            await self.sessions.save(session)

    def refuse(self, request: web.Request, message: str) -> web.Response:
        return self.render(request, "error.html", status=403, title="Refused", message=message)

    def set_cookie(self, response: web.StreamResponse, session: WebSession) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            session.sid,
            max_age=SESSION_SECONDS,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=self.secure_cookies,
        )

    def allowed_hosts(self, request: web.Request) -> set[str]:
        hosts = {request.host.lower()}
        if self.public_host:
            hosts.add(self.public_host)
        return hosts

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/static/") or request.path == "/healthz":
            return await handler(request)
        response = await self._guarded(request, handler)
        if not response.prepared:  # the event stream sets its own headers
            _security_headers(response)
        return response

    async def _guarded(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Who is asking; POSTs need the session's CSRF token and our own Origin; everything
        but the login pages needs a member."""
        session = await self.sessions.load(request.cookies.get(SESSION_COOKIE))
        who = Visitor(session=session)
        _visitor.set(who)
        if session is not None and session.member is not None:
            found = self.roster.member(session.member)
            if found is None:  # taken off the roster since: the session ends
                await self.sessions.delete(session.sid)
                who.session = None
            else:
                who.team, who.member = found
        if request.method == "POST":
            origin, referer = request.headers.get("Origin"), request.headers.get("Referer")
            if not same_origin(origin, referer, self.allowed_hosts(request)):
                return self.refuse(request, "This form was not sent from the dashboard's own page.")
            form = await request.post()
            if not csrf_matches(who.session, form.get("csrf")):
                return self.refuse(request, EXPIRED_FORM)
        public = request.path in ("/login", "/logout") or request.path.startswith("/login/token/")
        if not public and who.member is None:
            if request.method == "GET" and _is_page(request.path):
                return _see_other("/login")
            return web.Response(status=401, text="sign in first")
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return self.render(
                request, "error.html", status=404, title="Not found", message="There is no such page or case."
            )

    # ---- login ----------------------------------------------------------------------------------

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        if visitor().member is not None:
            return _see_other("/cases")
        return await self._anonymous_page(request, "login.html", error=None, member_id="")

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        member_id = str(form.get("member", "")).strip().lower()[:64]
        password = str(form.get("password", ""))
        found = self.roster.member(member_id)
        if found is not None and await self.sessions.failures(member_id) >= FAILURES_ALLOWED:
            log.warning("dashboard: login for %s locked after repeated failures", member_id)
            return self.render(
                request,
                "login.html",
                status=429,
                member_id=member_id,
                error="Too many wrong passwords: wait a quarter of an hour, or ask for a login link.",
            )
        hashed = found[1].password_hash if found is not None else None
        if not password or not await asyncio.to_thread(verify_password, password, hashed) or found is None:
            if found is not None:
                await self.sessions.failed(member_id)
            log.info("dashboard: failed password login%s", f" for {member_id}" if found else "")
            return self.render(
                request,
                "login.html",
                status=401,
                member_id=member_id,
                error="Wrong member id or password (only members on the team list can sign in).",
            )
        await self.sessions.succeeded(member_id)
        return await self._sign_in(request, found[1])

    async def token_form(self, request: web.Request) -> web.StreamResponse:
        """Opening a link only shows a button: link previews must not use the one-time token up."""
        if not TOKEN.match(request.match_info["token"]):
            raise web.HTTPNotFound()
        return await self._anonymous_page(request, "token.html", error=None)

    async def token_login(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        member_id = await self.board.redeem_login_token(token) if TOKEN.match(token) else None
        found = self.roster.member(member_id) if member_id else None
        if found is None:
            log.info("dashboard: a login link was refused (used, expired or not on the team list)")
            return self.render(
                request,
                "token.html",
                status=403,
                error="This login link does not work: a link works once, for a while. Ask for a new one.",
            )
        return await self._sign_in(request, found[1])

    async def logout(self, request: web.Request) -> web.StreamResponse:
        session = visitor().session
        if session is not None:
            await self.sessions.delete(session.sid)
        member = visitor().member
        if member is not None:
            log.info("dashboard: %s signed out", member.id)
        response = _see_other("/login")
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    async def _anonymous_page(
        self, request: web.Request, template: str, **context: Any
    ) -> web.StreamResponse:
        session = visitor().session
        fresh = session is None
        if session is None:
            session = await self.sessions.create(None)
            visitor().session = session
        response = await self.page(request, template, **context)
        if fresh:
            self.set_cookie(response, session)
        return response

    async def _sign_in(self, request: web.Request, member: Member) -> web.StreamResponse:
        old = visitor().session
        if old is not None:
            await self.sessions.delete(old.sid)
        session = await self.sessions.create(member.id)
        log.info("dashboard: %s signed in", member.id)
        response = _see_other("/cases")
        self.set_cookie(response, session)
        return response

    # ---- pages ----------------------------------------------------------------------------------

    async def home(self, request: web.Request) -> web.StreamResponse:
        return _see_other("/cases")

    async def health(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")

    async def cases(self, request: web.Request) -> web.StreamResponse:
        filters, tickets = await self._listed(request)
        return await self.page(
            request,
            "cases.html",
            filters=filters,
            tickets=tickets,
            statuses=STATUS_CHOICES,
            levels=LEVELS_DESCENDING,
            since_choices=SINCE_CHOICES,
            teams=[team.name for team in self.roster.teams],
            rows_url="/cases/rows?" + urlencode(filters.query()),
        )

    async def rules(self, request: web.Request) -> web.StreamResponse:
        """The rules in force: their version, the last check of an edit and what it changed."""
        return await self.page(
            request,
            "rules.html",
            status_now=await self.rules_history.status(),
            events=await self.rules_history.events(RULES_EVENTS_SHOWN),
        )

    async def rows(self, request: web.Request) -> web.StreamResponse:
        filters, tickets = await self._listed(request)
        return self.render(request, "_rows.html", filters=filters, tickets=tickets)

    async def _listed(self, request: web.Request) -> tuple[Filters, list[Ticket]]:
        filters = Filters.parse(request.query, {team.name for team in self.roster.teams})
        found = await self.board.tickets(
            status=filters.board_status,
            team=filters.team,
            min_level=filters.level,
            since=filters.since_time(),
            limit=1000,
        )
        return filters, sort_tickets([ticket for ticket in found if filters.admits(ticket)])

    async def case(self, request: web.Request) -> web.StreamResponse:
        return await self.page(request, "case.html", **await self._case_context(request))

    async def case_live(self, request: web.Request) -> web.StreamResponse:
        return self.render(request, "_case_live.html", **await self._case_context(request))

    async def _case_context(self, request: web.Request) -> dict[str, Any]:
        case_id = _case_id(request)
        ticket = await self.board.get(case_id)
        if ticket is None:
            raise web.HTTPNotFound()
        case = await self.store.load_case(case_id)
        audit = await self.board.audit(case_id)
        return {
            "ticket": ticket,
            "case": case,
            "audit": list(reversed(audit)),
            "timeline": timeline(ticket, audit),
            "why": reasoning(ticket, case),
            "transcript": case.transcript if case is not None else [],
            "note_max": NOTE_MAX,
        }

    # ---- actions --------------------------------------------------------------------------------

    async def act(self, request: web.Request) -> web.StreamResponse:
        case_id = _case_id(request)
        action = request.match_info["action"]
        member = visitor().member
        assert member is not None  # the middleware let only members through
        form = await request.post()
        try:
            if action == "claim":
                await self.board.claim(case_id, member, via="dashboard")
                done = "You have the case: the patient is told that a doctor has joined."
            elif action == "close":
                await self.board.close(case_id, member, via="dashboard")
                done = "Case closed: the patient is back with the bot."
            else:
                text = str(form.get("text", "")).strip()
                if not text:
                    await self.flash(request, "error", "A note needs some text.")
                    return _see_other(f"/cases/{case_id}")
                if len(text) > NOTE_MAX:
                    await self.flash(request, "error", f"A note may have at most {NOTE_MAX} characters.")
                    return _see_other(f"/cases/{case_id}")
                await self.board.note(case_id, member, text, via="dashboard")
                done = "Note added."
        except LookupError:
            raise web.HTTPNotFound() from None
        except Refusal as refusal:
            await self.board.refused(case_id, member.id, via="dashboard", why=f"{action}: {refusal}")
            log.info("dashboard: %s refused %s on %s", member.id, action, case_id)
            await self.flash(request, "error", f"Not done: {refusal}.")
            return _see_other(f"/cases/{case_id}")
        log.info("dashboard: %s did %s on %s", member.id, action, case_id)
        await self.flash(request, "ok", done)
        return _see_other(f"/cases/{case_id}")

    # ---- live updates ---------------------------------------------------------------------------

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: `hello` on connecting (refetch what you show), then `change` with
        {"case": id, "kind": what} for every ticket change; `signedout` when the session ends."""
        session = visitor().session
        assert session is not None
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        queue = await self.feed.subscribe()
        try:
            await response.write(b"retry: 3000\nevent: hello\ndata: {}\n\n")
            while True:
                try:
                    change = await asyncio.wait_for(queue.get(), self.keepalive_seconds)
                except TimeoutError:
                    if await self.sessions.load(session.sid) is None:
                        await response.write(b"event: signedout\ndata: {}\n\n")
                        break
                    await response.write(b": keepalive\n\n")
                    continue
                if change is None:
                    break
                data = json.dumps({"case": change.case_id, "kind": change.kind})
                await response.write(f"event: change\ndata: {data}\n\n".encode())
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            self.feed.unsubscribe(queue)
        return response

    async def on_shutdown(self, app: web.Application) -> None:
        await self.feed.close()


DASHBOARD = web.AppKey("dashboard", Dashboard)


def create_app(
    redis: Redis,
    roster: Roster,
    *,
    prefix: str = "wz:",
    secure_cookies: bool = False,
    public_url: str | None = None,
    keepalive_seconds: float = 15.0,
) -> web.Application:
    dashboard = Dashboard(
        redis,
        roster,
        prefix=prefix,
        secure_cookies=secure_cookies,
        public_url=public_url,
        keepalive_seconds=keepalive_seconds,
    )
    app = web.Application(middlewares=[dashboard.middleware], client_max_size=64 * 1024)
    app[DASHBOARD] = dashboard
    app.router.add_get("/", dashboard.home)
    app.router.add_get("/healthz", dashboard.health)
    app.router.add_get("/login", dashboard.login_form)
    app.router.add_post("/login", dashboard.login)
    app.router.add_get("/login/token/{token}", dashboard.token_form)
    app.router.add_post("/login/token/{token}", dashboard.token_login)
    app.router.add_post("/logout", dashboard.logout)
    app.router.add_get("/cases", dashboard.cases)
    app.router.add_get("/cases/rows", dashboard.rows)
    app.router.add_get("/cases/{case_id}", dashboard.case)
    app.router.add_get("/cases/{case_id}/live", dashboard.case_live)
    app.router.add_post("/cases/{case_id}/{action:claim|close|note}", dashboard.act)
    app.router.add_get("/events", dashboard.events)
    app.router.add_get("/rules", dashboard.rules)
    app.router.add_static("/static", STATIC)
    app.on_shutdown.append(dashboard.on_shutdown)
    return app


async def start_dashboard(settings: DashboardSettings, redis: Redis, *, prefix: str = "wz:") -> web.AppRunner:
    """Serve the dashboard on settings.dashboard_host:dashboard_port; `await runner.cleanup()`
    stops it (open event streams end at once)."""
    roster = settings.roster
    if not any(member.password_hash for team in roster.teams for member in team.members):
        log.warning("dashboard: no team member has a password_hash; sign in with `wenzhen team login-link`")
    app = create_app(
        redis,
        roster,
        prefix=prefix,
        secure_cookies=settings.dashboard_secure_cookies,
        public_url=settings.dashboard_public_url,
    )
    runner = web.AppRunner(app, access_log_class=AccessLogger, shutdown_timeout=5.0)
    await runner.setup()
    site = web.TCPSite(runner, settings.dashboard_host, settings.dashboard_port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    log.info("dashboard on %s", base_url(settings))
    return runner


class AccessLogger(AbstractAccessLogger):
    """Method, path (login tokens blanked, no query string), status and time: nothing else
    (and nothing for the health check)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if request.path == "/healthz":
            return
        path = re.sub(r"^/login/token/[^/]+", "/login/token/…", request.path)
        self.logger.info("%s %s %s %.0fms", request.method, path, response.status, time * 1000)


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _is_page(path: str) -> bool:
    """A page a browser navigates to (sent to the login form), not a fragment or the stream."""
    if path in ("/", "/cases"):
        return True
    return path.startswith("/cases/") and path != "/cases/rows" and not path.endswith("/live")


def _case_id(request: web.Request) -> str:
    case_id = request.match_info["case_id"]
    if not CASE_ID.match(case_id):
        raise web.HTTPNotFound()
    return case_id


def _security_headers(response: web.StreamResponse) -> None:
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cache-Control", "no-store")


def _static_version() -> str:
    digest = hashlib.sha256()
    for path in sorted(STATIC.iterdir()):
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:10]
