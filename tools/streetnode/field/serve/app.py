"""The crew page as an ASGI app (Starlette): pages rendered on the server with Jinja2
(autoescaped: node ids and values come from the network), live updates as Server-Sent
Events carrying only what changed, commands as POSTs that need a crew session.

    /                     the fleet (search ?q=), problem nodes first
    /node/ID              one node: readings, the last hour, health, check, identify
    /events/fleet         SSE: changed node cards and the order
    /events/node/ID       SSE: changed panels and new plot points
    POST /node/ID/identify, POST /node/ID/check      (crew session)
    /node/ID/check/report.txt|.json                   the latest check's report
    /login, POST /login, POST /logout
"""

import asyncio
import contextlib
import json
import time
from pathlib import Path
from urllib.parse import parse_qs, quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from streetnode.field import check, fleetwatch, monitor
from streetnode.field.serve.auth import Throttled
from streetnode.field.serve.hub import NODE_ID, redact

HERE = Path(__file__).parent
COOKIE = "streetnode_crew"
PUSH_EVERY_S = 1.0
PLOT_POINTS = 120  # sent per series with the page: a phone is 360-430 px wide
HEALTH = (  # what the health and status say, in the crew's words
    ("uptime_s", "up for"), ("outbox", "outbox"), ("dropped", "ever dropped"),
    ("reconnects", "reconnects"), ("rssi", "Wi-Fi signal"), ("boot_count", "boot count"),
    ("reset_cause", "last reset"), ("mem_free", "free heap"), ("mem_alloc", "used heap"),
    ("config_error", "config error"),
)  # fmt: skip


UNIT = {"mem_free": " B", "mem_alloc": " B", "rssi": " dBm"}


def duration(s):
    s = int(s)
    if s < 90:
        return "%d s" % s
    if s < 5400:
        return "%d min" % (s // 60)
    if s < 172800:
        return "%d h %d min" % (s // 3600, s % 3600 // 60)
    return "%d days" % (s // 86400)
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")  # fmt: skip


def _num(v, digits=None):
    if isinstance(v, float):
        return "%.*f" % (digits, v) if digits is not None else fleetwatch._num(round(v, 2))
    return str(v)


def reading_list(n, all_quantities=False):
    """[(label, value text)] of the latest readings with units: on the fleet page one value
    per quantity (as `monitor` shows them), on the node page every sensor's every value."""
    out = []
    if all_quantities:
        for name in sorted(n.sensors):
            for q in sorted(n.sensors[name].latest):
                v = n.sensors[name].latest[q]
                unit = fleetwatch.UNITS.get(fleetwatch.base_quantity(q) or "", "")
                out.append(("%s %s" % (name, q), "–" if v is None else "%s %s" % (_num(v), unit)))
        return out
    seen = {}
    for name in sorted(n.sensors):
        for q, v in n.sensors[name].latest.items():
            if q in monitor.SHORT and v is not None and q not in seen:
                seen[q] = v
    for q in monitor.ORDER:
        if q in seen:
            label, unit, digits = monitor.SHORT[q]
            out.append((label.strip() or q, "%s %s" % (_num(float(seen[q]), digits), unit)))
    return out


def alert_list(n):
    out = []
    for (kind, subject), a in sorted(n.alerts.items()):
        out.append({"kind": kind, "subject": subject, "detail": a.detail})
    return out


def card(hub, n, now):
    st = n.status or {}
    h = n.health or {}
    reg = hub.register.get(n.id) or {}
    state = st.get("state") or "unknown"
    alerts = alert_list(n)
    return {
        "id": n.id,
        "link": bool(NODE_ID.match(n.id)),
        "state": state,
        "seen": None if n.last_seen is None else int(now - n.last_seen),
        "readings": reading_list(n),
        "outbox": h.get("outbox"),
        "fw": st.get("fw") or h.get("fw"),
        "ota": (hub.ota.get(n.id) or {}).get("state"),
        "alerts": alerts,
        "site": reg.get("site") or "",
        "problem": bool(alerts) or state != "online",
    }


def ordered(hub):
    """Problem nodes first (most alerts first, as `monitor` orders), then the rest by id."""
    nodes = monitor.ordered(hub.fleet)
    return sorted(nodes, key=lambda n: 0 if n.alerts or (n.status or {}).get("state") != "online" else 1)


def matches(c, q):
    q = q.strip().lower()
    return not q or q in c["id"].lower() or q in c["site"].lower()


def health_view(n):
    h = n.health or {}
    st = n.status or {}
    rows = []
    for k, label in HEALTH:
        v = h.get(k, st.get(k))
        if v is not None and v != "":
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                v = duration(v) if k == "uptime_s" else "%s%s" % (_num(v), UNIT.get(k, ""))
            rows.append((label, str(v)))
    errs = h.get("errors")
    if isinstance(errs, dict) and errs:
        rows.append(("sensor errors", ", ".join("%s %s" % (k, errs[k]) for k in sorted(errs))))
    states = h.get("sensors")
    if isinstance(states, dict) and states:
        rows.append(("sensor states", ", ".join("%s %s" % (k, states[k]) for k in sorted(states))))
    return rows


class Page:
    """The app's state: the hub, the sign-in, the listener's openness."""

    def __init__(self, hub, auth, open_reading=True, secure_cookie=False):
        self.hub = hub
        self.auth = auth
        self.open_reading = open_reading
        self.secure_cookie = secure_cookie
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.globals["quote"] = lambda s: quote(s, safe="")
        self.stopping = lambda: False  # the server sets it: live streams end before it waits for them

    # -- access -----------------------------------------------------------------------------

    def crew(self, request):
        return self.auth.valid(request.cookies.get(COOKIE))

    def may_read(self, request):
        return self.open_reading or self.crew(request)

    def same_origin(self, request):
        """A POST from our own page (the cookie is SameSite=Strict too)."""
        origin = request.headers.get("origin")
        if origin is None:
            return request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")
        host = request.headers.get("host", "")
        return origin in ("http://" + host, "https://" + host)

    def render(self, request, name, status=200, **ctx):
        ctx.setdefault("crew", self.crew(request))
        ctx.setdefault("commands_on", self.auth.enabled)
        r = self.templates.TemplateResponse(request, name, ctx, status_code=status)
        return r

    def to_login(self, request):
        return RedirectResponse("/login?next=" + quote(request.url.path, safe=""), 303)

    # -- pages ------------------------------------------------------------------------------

    async def fleet(self, request):
        if not self.may_read(request):
            return self.to_login(request)
        q = request.query_params.get("q", "")
        now = time.time()
        with self.hub.lock:
            cards = [card(self.hub, n, now) for n in ordered(self.hub)]
        shown = [c for c in cards if matches(c, q)]
        return self.render(request, "fleet.html", cards=shown, total=len(cards), q=q,
                           alerting=sum(1 for c in cards if c["problem"]), now=now)  # fmt: skip

    def node_ctx(self, node_id, now):
        hub = self.hub
        n = hub.fleet.nodes.get(node_id)
        if n is None:
            return None
        c = card(hub, n, now)
        run = hub.checks.get(node_id)
        return {
            "node": c,
            "register": {k: v for k, v in (hub.register.get(node_id) or {}).items() if k in ("site", "board", "sensors", "lat", "lon")},
            "readings": reading_list(n, all_quantities=True),
            "health": health_view(n),
            "check": run.as_view() if run else None,
            "sent": dict(hub.sent[node_id]) if node_id in hub.sent else None,
        }

    async def node(self, request):
        if not self.may_read(request):
            return self.to_login(request)
        node_id = request.path_params["node"]
        now = time.time()
        with self.hub.lock:
            ctx = self.node_ctx(node_id, now)
            series = {k: s.points[-PLOT_POINTS:] if len(s.points) <= PLOT_POINTS else s.points[:: max(1, len(s.points) // PLOT_POINTS)]
                      for k, s in self.hub.series.get(node_id, {}).items()}  # fmt: skip
        if ctx is None:
            return self.render(request, "missing.html", status=404, node_id=node_id)
        plot = {k: [[round(t - now, 1), v] for t, v in pts] for k, pts in sorted(series.items())}
        return self.render(request, "node.html", plot=plot, now=now, **ctx)

    async def login_form(self, request):
        return self.render(request, "login.html", next=_safe_next(request.query_params.get("next")), error=None)

    async def login(self, request):
        if not self.same_origin(request):
            return PlainTextResponse("cross-site request refused", 403)
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        password = (form.get("password") or [""])[0]
        nxt = _safe_next((form.get("next") or ["/"])[0])
        if not self.auth.enabled:
            return self.render(request, "login.html", status=403, next=nxt,
                               error="This server has no crew password: start it with --crew-password-file.")  # fmt: skip
        address = request.client.host if request.client else "?"
        try:
            token = await run_in_threadpool(self.auth.sign_in, password, address)
        except Throttled as e:
            return self.render(request, "login.html", status=429, next=nxt, error=str(e).capitalize() + ".")
        if token is None:
            return self.render(request, "login.html", status=401, next=nxt, error="Wrong password.")
        r = RedirectResponse(nxt, 303)
        r.set_cookie(COOKIE, token, max_age=int(self.auth.lifetime_s), httponly=True, samesite="strict",
                     secure=self.secure_cookie, path="/")  # fmt: skip
        return r

    async def logout(self, request):
        if not self.same_origin(request):
            return PlainTextResponse("cross-site request refused", 403)
        self.auth.sign_out(request.cookies.get(COOKIE))
        r = RedirectResponse("/", 303)
        r.delete_cookie(COOKIE, path="/")
        return r

    # -- commands ---------------------------------------------------------------------------

    def refuse(self, request, node_id):
        if not self.same_origin(request):
            return JSONResponse({"error": "cross-site request refused"}, 403)
        if not self.auth.enabled:
            return JSONResponse({"error": "Commands are off: this server has no crew password."}, 403)
        if not self.crew(request):
            return JSONResponse({"error": "Refused: sign in with the crew password to send commands.",
                                 "login": "/login?next=" + quote("/node/" + node_id, safe="")}, 401)  # fmt: skip
        if not NODE_ID.match(node_id) or node_id not in self.hub.fleet.nodes:
            return JSONResponse({"error": "no node %s" % node_id}, 404)
        return None

    async def identify(self, request):
        node_id = request.path_params["node"]
        refused = self.refuse(request, node_id)
        if refused is not None:
            return refused
        cid = self.hub.send(node_id, "identify", {"seconds": 10})
        return JSONResponse({"ok": True, "id": cid})

    async def run_check(self, request):
        node_id = request.path_params["node"]
        refused = self.refuse(request, node_id)
        if refused is not None:
            return refused
        run = self.hub.start_check(node_id)
        return JSONResponse({"ok": True, "started": run.started})

    async def report(self, request):
        if not self.may_read(request):
            return self.to_login(request)
        node_id, fmt = request.path_params["node"], request.path_params["fmt"]
        run = self.hub.checks.get(node_id)
        if run is None or run.result is None or fmt not in ("txt", "json"):
            return PlainTextResponse("no finished check of %s" % node_id, 404)
        result = redact(run.result)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(result["finished"]))
        name = "%s-commissioning-%s.%s" % (node_id, stamp, fmt)
        return Response(check.report_text(result, fmt == "json"),
                        media_type="application/json" if fmt == "json" else "text/plain; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="%s"' % name})  # fmt: skip

    # -- live updates -----------------------------------------------------------------------

    async def fleet_events(self, request):
        if not self.may_read(request):
            return PlainTextResponse("sign in first", 401)

        def frame(sent):
            now = time.time()
            with self.hub.lock:
                cards = [card(self.hub, n, now) for n in ordered(self.hub)]
            html = {}
            for c in cards:
                text = self.templates.get_template("_card.html").render(c=c, quote=self.templates.env.globals["quote"])
                if sent.get(c["id"]) != text:
                    html[c["id"]] = sent[c["id"]] = text
            return {"now": now, "order": [c["id"] for c in cards], "html": html, "total": len(cards),
                    "alerting": sum(1 for c in cards if c["problem"])}  # fmt: skip

        return self._stream(request, frame)

    async def node_events(self, request):
        if not self.may_read(request):
            return PlainTextResponse("sign in first", 401)
        node_id = request.path_params["node"]
        try:  # the page holds the points up to the time it was made: send only newer ones
            since = float(request.query_params.get("since", ""))
        except ValueError:
            since = time.time() - 2
        last_t = {}
        env = self.templates.env

        def frame(sent):
            now = time.time()
            with self.hub.lock:
                ctx = self.node_ctx(node_id, now)
                fresh = {}
                for k, s in self.hub.series.get(node_id, {}).items():
                    pts = [p for p in s.points[-50:] if p[0] > last_t.get(k, since)]
                    if pts:
                        last_t[k] = pts[-1][0]
                        fresh[k] = [[round(t - now, 1), v] for t, v in pts]
            if ctx is None:
                return None
            ctx.update(crew=self.crew(request), commands_on=self.auth.enabled, quote=env.globals["quote"])
            html = {}
            for part in ("readings", "health", "check", "cmd", "head"):
                text = env.get_template("_%s.html" % part).render(**ctx)
                if sent.get(part) != text:
                    html[part] = sent[part] = text
            return {"now": now, "html": html, "points": fresh}

        return self._stream(request, frame)

    def _stream(self, request, frame):
        async def gen():
            sent = {}
            seen = -1
            last = 0.0
            yield "retry: 2000\n\n"
            while not self.stopping() and not await request.is_disconnected():
                v = self.hub.version
                if v != seen or time.monotonic() - last > 15:
                    seen, last = v, time.monotonic()
                    data = frame(sent)
                    if data is not None:
                        yield "data: %s\n\n" % json.dumps(data, separators=(",", ":"))
                await asyncio.sleep(PUSH_EVERY_S)

        return StreamingResponse(gen(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})  # fmt: skip


def _safe_next(path):
    """Only a path of this site (no //host, no scheme) to go back to after signing in."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


class SecurityHeaders:
    """CSP (nothing but this server: no CDN, no third party), no sniffing, no referrer to
    other sites (same-origin: with no-referrer at all Chrome sends `Origin: null` on a form POST)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"same-origin"), (b"x-frame-options", b"DENY")]  # fmt: skip
                if scope["path"].startswith("/static/"):
                    headers.append((b"cache-control", b"public, max-age=3600"))
                message = dict(message, headers=headers)
            await send(message)

        await self.app(scope, receive, send_with)


def build(hub, auth, open_reading=True, secure_cookie=False, tick_s=1.0):
    page = Page(hub, auth, open_reading, secure_cookie)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        async def ticker():
            while True:
                hub.tick()
                await asyncio.sleep(tick_s)

        task = asyncio.create_task(ticker())
        try:
            yield
        finally:
            task.cancel()

    routes = [
        Route("/", page.fleet),
        Route("/node/{node}", page.node),
        Route("/node/{node}/identify", page.identify, methods=["POST"]),
        Route("/node/{node}/check", page.run_check, methods=["POST"]),
        Route("/node/{node}/check/report.{fmt}", page.report),
        Route("/events/fleet", page.fleet_events),
        Route("/events/node/{node}", page.node_events),
        Route("/login", page.login_form, methods=["GET"]),
        Route("/login", page.login, methods=["POST"]),
        Route("/logout", page.logout, methods=["POST"]),
        Route("/favicon.ico", lambda request: RedirectResponse("/static/icon.svg", 301)),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    # gzip for a slow mobile link (Starlette leaves text/event-stream alone)
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(GZipMiddleware, minimum_size=800)])
    app.state.page = page
    outer = SecurityHeaders(app)
    outer.page = page
    return outer
