"""The doctor team's dashboard over a real Redis, driven by aiohttp's test client: login (password
and one-time link), CSRF and same-origin checks, roles, actions and their audit trail, the list's
filters, the case page and the live event stream; and the `wenzhen team` commands."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner
from redis.asyncio import Redis

from bot.cli import cli
from bot.config import Settings
from dashboard import create_app, hash_password, start_dashboard, verify_password
from dashboard.auth import SESSION_COOKIE
from dialog.events import Escalation, EscalationReason
from dialog.rules_events import RulesEvent, RulesStatus
from dialog.session import Case, Disposition, Turn, utcnow
from dialog.team import Member, Role, Roster, Team, TicketStatus
from safety import Level
from storage.embedded import EmbeddedRedis
from storage.redis_store import RedisStore
from storage.rules_history import RulesHistory
from storage.team_board import TeamBoard

PASSWORD = "correct horse battery"
HASH = hash_password(PASSWORD)
ROSTER = Roster(
    teams=(
        Team(
            name="general",
            members=(
                Member(id="drli", name="Dr Li", role=Role.DOCTOR, password_hash=HASH),
                Member(id="ops", name="Operator Zhang", role=Role.OPERATOR, password_hash=HASH),
            ),
        ),
        Team(
            name="peds",
            members=(
                Member(id="drwang", name="Dr Wang", role=Role.DOCTOR, password_hash=HASH),
                Member(id="drnohash", name="Dr No Hash", role=Role.DOCTOR),
            ),
        ),
    )
)
Client = TestClient[web.Request, web.Application]
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


# ---- fixtures and helpers --------------------------------------------------------------------------


@pytest.fixture
def board(redis: Redis, key_prefix: str) -> TeamBoard:
    return TeamBoard(redis, prefix=key_prefix)


@pytest.fixture
async def client(redis: Redis, redis_store: RedisStore, key_prefix: str) -> AsyncIterator[Client]:
    app = create_app(redis, ROSTER, prefix=key_prefix, keepalive_seconds=0.5)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def origin(client: Client) -> dict[str, str]:
    return {"Origin": f"http://{client.host}:{client.port}"}


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF token in the page"
    return found.group(1)


async def login(client: Client, member: str, password: str = PASSWORD) -> aiohttp.ClientResponse:
    page = await client.get("/login")
    csrf = csrf_of(await page.text())
    return await client.post(
        "/login", data={"csrf": csrf, "member": member, "password": password}, headers=origin(client)
    )


async def signed_in(client: Client, member: str) -> str:
    """Sign in; the CSRF token of the new session."""
    response = await login(client, member)
    assert response.status == 200, response.status
    assert response.url.path == "/cases"
    return csrf_of(await response.text())


async def post(client: Client, path: str, csrf: str | None, **fields: str) -> aiohttp.ClientResponse:
    data = dict(fields)
    if csrf is not None:
        data["csrf"] = csrf
    return await client.post(path, data=data, headers=origin(client))


def make_case(
    case_id: str,
    *,
    level: Level = Level.EMERGENCY,
    complaint: str = "chest pain for an hour",
    red_flags: tuple[str, ...] = ("chest_pain_cardiac",),
) -> Case:
    return Case(
        case_id=case_id,
        patient_id=f"patient-{case_id}",
        rules_version="test",
        who="self",
        age=58.0,
        sex="M",
        complaint=complaint,
        present=["chest_pain"],
        answers={"pain_duration_minutes": 60.0, "sweating": "yes"},
        answered_from_text=["sweating"],
        protocols=["chest_pain"],
        level=level,
        rule="chest_pain.cardiac_features",
        red_flags=list(red_flags),
        disposition=Disposition(
            level=level,
            rule="chest_pain.cardiac_features",
            protocol="chest_pain",
            reason="chest pain with sweating in a man over 50",
            read={"sweating": "yes", "age": 58.0},
            red_flags=red_flags,
        ),
        transcript=[
            Turn(role="patient", text="I have chest pain <script>alert(1)</script>"),
            Turn(role="bot", text="Are you sweating?"),
            Turn(role="system", text="case flagged for the doctor team"),
            Turn(role="doctor", text="This is Dr Li, I am reading your messages."),
        ],
    )


async def flag(
    board: TeamBoard,
    store: RedisStore,
    case: Case,
    *,
    team: str = "general",
    reason: EscalationReason = "red_flag",
) -> None:
    await store.save_case(case)
    escalation = Escalation(
        case_id=case.case_id,
        patient_id=case.patient_id,
        reason=reason,
        priority=1,
        level=case.level,
        flags=tuple(case.red_flags),
    )
    await board.flag(escalation, team, case, "en")


async def read_until(response: aiohttp.ClientResponse, needle: str, *, within: float = 5.0) -> str:
    """Read the event stream until `needle` turns up (or fail after `within` seconds)."""
    seen = ""

    async def scan() -> str:
        nonlocal seen
        while needle not in seen:
            line = await response.content.readline()
            if not line:
                raise AssertionError(f"the stream ended before {needle!r}: {seen!r}")
            seen += line.decode()
        return seen

    return await asyncio.wait_for(scan(), within)


# ---- password hashes --------------------------------------------------------------------------


def test_password_hashes_are_salted_scrypt() -> None:
    first, second = hash_password("s3cret-pass"), hash_password("s3cret-pass")
    assert first.startswith("scrypt$16384$8$1$")
    assert len(first.split("$")) == 6
    assert first != second  # a random salt each time
    assert verify_password("s3cret-pass", first)
    assert verify_password("s3cret-pass", second)
    assert not verify_password("s3cret-pasS", first)
    assert not verify_password("s3cret-pass", None)
    assert not verify_password("s3cret-pass", "scrypt$16384$8$1$notbase64!$xx")
    assert not verify_password("s3cret-pass", "plain-text")


# ---- login ---------------------------------------------------------------------------------------------


async def test_password_login_and_logout(client: Client, redis: Redis, key_prefix: str) -> None:
    response = await client.get("/cases", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/login"

    response = await login(client, "drli")
    assert response.status == 200
    assert response.url.path == "/cases"
    html = await response.text()
    assert "Dr Li" in html
    assert "Flagged cases" in html
    sid = client.session.cookie_jar.filter_cookies(client.make_url("/"))[SESSION_COOKIE].value
    assert await redis.exists(f"{key_prefix}web:{sid}")
    ttl = await redis.ttl(f"{key_prefix}web:{sid}")
    assert 11 * 3600 < ttl <= 12 * 3600

    response = await post(client, "/logout", csrf_of(html))
    assert response.url.path == "/login"
    assert not await redis.exists(f"{key_prefix}web:{sid}")
    response = await client.get("/cases", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/login"
    # the old cookie is worth nothing now
    client.session.cookie_jar.update_cookies({SESSION_COOKIE: sid})
    response = await client.get("/cases", allow_redirects=False)
    assert response.status == 303


async def test_the_session_cookie_is_httponly_and_strict(redis: Redis, key_prefix: str) -> None:
    for secure in (False, True):
        app = create_app(redis, ROSTER, prefix=key_prefix, secure_cookies=secure)
        async with TestClient(TestServer(app)) as test_client:
            response = await test_client.get("/login")
            cookie = response.cookies[SESSION_COOKIE]
            assert cookie["httponly"]
            assert cookie["samesite"] == "Strict"
            assert bool(cookie["secure"]) is secure
            assert "Content-Security-Policy" in response.headers


async def test_a_wrong_password_is_refused(client: Client, redis: Redis, key_prefix: str) -> None:
    response = await login(client, "drli", "wrong password")
    assert response.status == 401
    assert "Wrong member id or password" in await response.text()
    assert (await client.get("/cases", allow_redirects=False)).status == 303
    assert await redis.get(f"{key_prefix}web:fail:drli") == b"1"


async def test_repeated_wrong_passwords_lock_the_member_out(client: Client) -> None:
    for _ in range(10):
        assert (await login(client, "drwang", "guess")).status == 401
    locked = await login(client, "drwang")  # even the right password, for a quarter of an hour
    assert locked.status == 429
    assert "Too many wrong passwords" in await locked.text()
    assert (await login(client, "drli")).status == 200  # others are not locked out


async def test_people_not_on_the_roster_cannot_sign_in(client: Client) -> None:
    assert (await login(client, "stranger")).status == 401
    assert (await login(client, "drnohash", "")).status == 401  # a member without a password
    assert (await login(client, "drnohash", PASSWORD)).status == 401
    assert (await client.get("/cases", allow_redirects=False)).status == 303


async def test_a_login_link_works_once(client: Client, board: TeamBoard, key_prefix: str) -> None:
    token = await board.issue_login_token("drwang", ttl=timedelta(minutes=5))
    page = await client.get(f"/login/token/{token}")
    assert page.status == 200
    assert await board.redis.exists(f"{key_prefix}login:{token}")  # opening the link uses nothing up
    response = await post(client, f"/login/token/{token}", csrf_of(await page.text()))
    assert response.status == 200
    assert response.url.path == "/cases"
    html = await response.text()
    assert "Dr Wang" in html
    await post(client, "/logout", csrf_of(html))

    page = await client.get(f"/login/token/{token}")
    response = await post(client, f"/login/token/{token}", csrf_of(await page.text()))
    assert response.status == 403
    assert "does not work" in await response.text()
    assert (await client.get("/cases", allow_redirects=False)).status == 303


async def test_a_login_link_for_someone_off_the_roster_is_refused(client: Client, board: TeamBoard) -> None:
    token = await board.issue_login_token("ghost", ttl=timedelta(minutes=5))
    page = await client.get(f"/login/token/{token}")
    response = await post(client, f"/login/token/{token}", csrf_of(await page.text()))
    assert response.status == 403
    assert (await client.get("/cases", allow_redirects=False)).status == 303


async def test_pages_fragments_and_the_stream_need_a_session(client: Client) -> None:
    for path in ("/cases/rows", "/events", "/cases/abc/live"):
        assert (await client.get(path, allow_redirects=False)).status == 401, path
    assert (await client.get("/cases/abc", allow_redirects=False)).status == 303


# ---- CSRF and origin --------------------------------------------------------------------------


async def test_a_post_without_the_right_csrf_token_or_origin_is_refused(
    client: Client, board: TeamBoard, redis_store: RedisStore
) -> None:
    await flag(board, redis_store, make_case("c-csrf"))
    csrf = await signed_in(client, "drli")

    assert (await post(client, "/cases/c-csrf/claim", None)).status == 403
    assert (await post(client, "/cases/c-csrf/claim", "not-the-token")).status == 403
    foreign = await client.post(
        "/cases/c-csrf/claim", data={"csrf": csrf}, headers={"Origin": "http://evil.example"}
    )
    assert foreign.status == 403
    bare = await client.post("/cases/c-csrf/claim", data={"csrf": csrf})  # neither Origin nor Referer
    assert bare.status == 403
    login_without_token = await client.post(
        "/login", data={"member": "drli", "password": PASSWORD}, headers=origin(client)
    )
    assert login_without_token.status == 403

    ticket = await board.get("c-csrf")
    assert ticket is not None
    assert ticket.status is TicketStatus.OPEN
    assert [entry.kind for entry in await board.audit("c-csrf")] == ["flagged"]

    referer = {"Referer": f"http://{client.host}:{client.port}/cases/c-csrf"}
    response = await client.post("/cases/c-csrf/claim", data={"csrf": csrf}, headers=referer)
    assert response.status == 200
    ticket = await board.get("c-csrf")
    assert ticket is not None
    assert ticket.status is TicketStatus.CLAIMED


# ---- roles and actions ------------------------------------------------------------------------


async def test_an_operator_may_not_claim_and_the_attempt_is_audited(
    client: Client, board: TeamBoard, redis_store: RedisStore
) -> None:
    await flag(board, redis_store, make_case("c-ops"))
    csrf = await signed_in(client, "ops")
    page = await client.get("/cases/c-ops")
    assert 'data-action="claim"' not in await page.text()  # no button for operators

    response = await post(client, "/cases/c-ops/claim", csrf)
    assert response.status == 200
    assert response.url.path == "/cases/c-ops"
    html = await response.text()
    assert "Not done: a operator may not claim." in html

    ticket = await board.get("c-ops")
    assert ticket is not None
    assert ticket.status is TicketStatus.OPEN
    refused = (await board.audit("c-ops"))[-1]
    assert (refused.kind, refused.actor, refused.via) == ("refused", "ops", "dashboard")
    assert "claim" in refused.detail
    assert "audit-refused" in html

    response = await post(client, "/cases/c-ops/note", csrf, text="called the patient's GP")
    assert "Note added." in await response.text()
    note = (await board.audit("c-ops"))[-1]
    assert (note.kind, note.actor, note.detail) == ("note", "ops", "called the patient's GP")
    assert await board.actions("test", block_ms=50) == []


async def test_a_doctor_claims_and_closes(client: Client, board: TeamBoard, redis_store: RedisStore) -> None:
    await flag(board, redis_store, make_case("c-doc"))
    csrf = await signed_in(client, "drli")

    response = await post(client, "/cases/c-doc/claim", csrf)
    html = await response.text()
    assert "You have the case" in html
    assert 'id="claimed-by">by drli' in html
    ticket = await board.get("c-doc")
    assert ticket is not None
    assert ticket.status is TicketStatus.CLAIMED
    assert ticket.claimed_by == "drli"
    actions = await board.actions("test", block_ms=50)
    assert [(a.kind, a.case_id, a.member_id, a.doctor_name) for _, a in actions] == [
        ("claimed", "c-doc", "drli", "Dr Li")
    ]
    await board.done(actions[0][0])

    response = await post(client, "/cases/c-doc/claim", csrf)  # again: refused, readable, audited
    assert "Not done: already claimed by drli." in await response.text()

    response = await post(client, "/cases/c-doc/close", csrf)
    assert "Case closed" in await response.text()
    ticket = await board.get("c-doc")
    assert ticket is not None
    assert ticket.status is TicketStatus.CLOSED
    assert [a.kind for _, a in await board.actions("test", block_ms=50)] == ["closed"]
    kinds = [(entry.kind, entry.via) for entry in await board.audit("c-doc")]
    assert kinds == [
        ("flagged", "bot"),
        ("claimed", "dashboard"),
        ("refused", "dashboard"),
        ("closed", "dashboard"),
    ]


async def test_an_empty_note_and_an_unknown_case(
    client: Client, board: TeamBoard, redis_store: RedisStore
) -> None:
    await flag(board, redis_store, make_case("c-note"))
    csrf = await signed_in(client, "drli")
    response = await post(client, "/cases/c-note/note", csrf, text="   ")
    assert "A note needs some text." in await response.text()
    assert [entry.kind for entry in await board.audit("c-note")] == ["flagged"]
    assert (await post(client, "/cases/nope/claim", csrf)).status == 404
    assert (await client.get("/cases/nope")).status == 404


# ---- the list and a case -------------------------------------------------------------------------


async def test_the_list_filters(
    client: Client, board: TeamBoard, redis_store: RedisStore, redis: Redis
) -> None:
    drli = ROSTER.member("drli")
    assert drli is not None
    await flag(board, redis_store, make_case("c-emergency"))
    await flag(
        board, redis_store, make_case("c-peds", level=Level.CONSULTATION_24), team="peds", reason="level"
    )
    await flag(board, redis_store, make_case("c-closed"))
    await board.close("c-closed", drli[1], via="dashboard")
    await flag(board, redis_store, make_case("c-old"))
    # an old case: as if it had been flagged three days ago
    old = await board.get("c-old")
    assert old is not None
    old.opened_at = utcnow() - timedelta(days=3)
    await redis.set(f"{board.prefix}ticket:c-old", old.model_dump_json())
    await redis.zadd(f"{board.prefix}tickets", {"c-old": old.opened_at.timestamp()})
    await signed_in(client, "drli")

    async def listed(query: str, path: str = "/cases") -> set[str]:
        response = await client.get(f"{path}?{query}")
        assert response.status == 200
        return set(re.findall(r'<tr data-case="([^"]+)"', await response.text()))

    everything = {"c-emergency", "c-peds", "c-old"}
    assert await listed("") == everything  # default: open or claimed
    assert await listed("status=any") == everything | {"c-closed"}
    assert await listed("status=closed") == {"c-closed"}
    assert await listed("status=open&level=emergency") == {"c-emergency", "c-old"}
    assert await listed("level=consultation_24") == everything
    assert await listed("team=peds") == {"c-peds"}
    assert await listed("since=24h") == {"c-emergency", "c-peds"}
    assert await listed("since=7d") == everything
    assert await listed("team=peds", "/cases/rows") == {"c-peds"}
    assert await listed("status=bogus&level=bogus&team=bogus&since=bogus") == everything


async def test_the_case_page(client: Client, board: TeamBoard, redis_store: RedisStore) -> None:
    await flag(board, redis_store, make_case("c-page"))
    await board.set_sbar("c-page", "S: chest pain\nB: 58-year-old man\nA: possible ACS\nR: ambulance")
    await board.alerted("c-page", "re-alerted drli")
    csrf = await signed_in(client, "drli")
    await post(client, "/cases/c-page/note", csrf, text="family informed")
    await post(client, "/cases/c-page/claim", csrf)

    response = await client.get("/cases/c-page")
    html = await response.text()
    # the transcript, each role shown as its own
    for role in ("patient", "bot", "doctor", "system"):
        assert f"turn role-{role}" in html
    assert "I have chest pain &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)" not in html
    assert "This is Dr Li, I am reading your messages." in html
    # the reasoning
    for text in (
        "chest_pain.cardiac_features",
        "chest pain with sweating in a man over 50",
        "pain_duration_minutes",
        "chest_pain_cardiac",
        "(read from text)",
        "Emergency department now",
    ):
        assert text in html, text
    # SBAR, timeline and audit trail
    assert "SBAR summary" in html
    assert "A: possible ACS" in html
    assert "<strong>opened</strong>" in html
    assert "<strong>claimed by drli</strong>" in html
    assert "<strong>re-alert sent</strong>" in html
    for kind in ("flagged", "sbar", "realert", "note", "claimed"):
        assert f'class="audit-{kind}"' in html, kind
    assert "family informed" in html

    fragment = await client.get("/cases/c-page/live")
    assert fragment.status == 200
    assert "Audit trail" in await fragment.text()


async def test_a_case_whose_transcript_is_gone(
    client: Client, board: TeamBoard, redis_store: RedisStore
) -> None:
    case = make_case("c-gone")
    await flag(board, redis_store, case)
    await redis_store.redis.delete(f"{redis_store.prefix}case:c-gone")
    await signed_in(client, "drli")
    html = await (await client.get("/cases/c-gone")).text()
    assert "no longer kept" in html
    assert "chest_pain.cardiac_features" in html


# ---- live updates -------------------------------------------------------------------------------


async def test_the_event_stream_reports_ticket_changes(
    client: Client, board: TeamBoard, redis_store: RedisStore
) -> None:
    csrf = await signed_in(client, "drli")
    stream = await client.get("/events")
    assert stream.status == 200
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    await read_until(stream, "event: hello")

    await flag(board, redis_store, make_case("c-live"))
    seen = await read_until(stream, '"case": "c-live"')
    assert '{"case": "c-live", "kind": "flagged"}' in seen

    await post(client, "/cases/c-live/claim", csrf)
    await read_until(stream, '{"case": "c-live", "kind": "claimed"}')
    assert "chest pain" not in seen  # ids and kinds only, never text
    stream.close()


async def test_the_event_stream_ends_when_the_session_does(client: Client) -> None:
    csrf = await signed_in(client, "drli")
    stream = await client.get("/events")
    await read_until(stream, "event: hello")
    await post(client, "/logout", csrf)
    await read_until(stream, "event: signedout")  # within a keepalive (0.5 s here)
    stream.close()


async def test_start_dashboard_serves_and_stops_with_open_streams(redis: Redis, key_prefix: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(dashboard_port=port, teams=list(ROSTER.teams))
    runner = await start_dashboard(settings, redis, prefix=key_prefix)
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert await response.text() == "ok"
            async with session.get(f"http://127.0.0.1:{port}/login") as response:
                csrf = csrf_of(await response.text())
            data = {"csrf": csrf, "member": "drli", "password": PASSWORD}
            headers = {"Origin": f"http://127.0.0.1:{port}"}
            async with session.post(f"http://127.0.0.1:{port}/login", data=data, headers=headers) as response:
                assert response.url.path == "/cases"
            stream = await session.get(f"http://127.0.0.1:{port}/events")
            await read_until(stream, "event: hello")
            await asyncio.wait_for(runner.cleanup(), 10)  # the open stream does not hold it up
            stream.close()
    finally:
        await runner.cleanup()
        keys = [key async for key in redis.scan_iter(match=f"{key_prefix}*")]
        if keys:
            await redis.delete(*keys)


# ---- the command line ----------------------------------------------------------------------------


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "wenzhen.toml"
    config.write_text(
        'dashboard_public_url = "https://team.example.org/"\n'
        "[[teams]]\n"
        'name = "general"\n'
        "[[teams.members]]\n"
        'id = "drli"\n'
        'name = "Dr Li"\n'
        'role = "doctor"\n',
        encoding="utf-8",
    )
    return config


def test_team_login_link_prints_a_working_link(tmp_path: Path, redis_url: str) -> None:
    env = {"WENZHEN_CONFIG": str(_config(tmp_path)), "REDIS_URL": redis_url}
    result = CliRunner().invoke(cli, ["team", "login-link", "drli", "--minutes", "5"], env=env)
    assert result.exit_code == 0, result.output
    link = result.output.strip()
    assert re.fullmatch(r"https://team\.example\.org/login/token/[A-Za-z0-9_-]{32}", link), link

    async def redeem() -> tuple[str | None, int]:
        client = Redis.from_url(redis_url)
        try:
            board = TeamBoard(client)  # the default prefix, as the command uses
            key = f"{board.prefix}login:{link.rsplit('/', 1)[1]}"
            ttl = await client.ttl(key)
            return await board.redeem_login_token(link.rsplit("/", 1)[1]), ttl
        finally:
            await client.aclose()

    member, ttl = asyncio.run(redeem())
    assert member == "drli"
    assert 4 * 60 < ttl <= 5 * 60

    unknown = CliRunner().invoke(cli, ["team", "login-link", "nobody"], env=env)
    assert unknown.exit_code == 1
    assert "not a member" in unknown.output


def test_team_hash_password_asks_twice(tmp_path: Path) -> None:
    env = {"WENZHEN_CONFIG": str(_config(tmp_path))}
    result = CliRunner().invoke(
        cli, ["team", "hash-password"], input="a long secret\na long secret\n", env=env
    )
    assert result.exit_code == 0, result.output
    encoded = result.output.strip().splitlines()[-1]
    assert verify_password("a long secret", encoded)
    assert "a long secret" not in encoded

    mismatch = CliRunner().invoke(
        cli, ["team", "hash-password"], input="a long secret\nanother one\n" * 3, env=env
    )
    assert mismatch.exit_code != 0


def test_a_second_embedded_redis_leaves_the_first_running(tmp_path: Path) -> None:
    """`wenzhen team login-link` on the embedded Redis next to a running dashboard: its Redis is
    the dashboard's, and closing it must not stop the dashboard's server."""
    first = EmbeddedRedis(tmp_path)
    try:
        second = EmbeddedRedis(tmp_path)
        assert second.socket == first.socket
        assert not second.started
        second.close()

        async def ping() -> bool:
            client = Redis.from_url(first.url)
            try:
                return bool(await client.ping())
            finally:
                await client.aclose()

        assert asyncio.run(ping())
    finally:
        first.close()


async def test_the_rules_page_shows_the_live_version_and_the_last_edit(
    client: Client, redis: Redis, key_prefix: str
) -> None:
    history = RulesHistory(redis, prefix=key_prefix)
    started = RulesEvent(version="v-one", who="start", action="started")
    await history.record(started, files={"protocols/a.yaml": "id: a"})
    refused = RulesEvent(
        version="v-two",
        previous="v-one",
        who="ops",
        action="rejected",
        files_changed=["protocols/a.yaml"],
        report="the edit fails the regression suite:\nr-1: expected emergency got self_care",
    )
    status = RulesStatus(live_version="v-one", directory="/srv/rules", since=started.at, last=refused)
    await history.record(refused, status=status)
    await signed_in(client, "ops")
    page = await (await client.get("/rules")).text()
    assert "v-one" in page
    assert "/srv/rules" in page
    assert "rejected by ops" in page
    assert "the running rules stayed live" in page
    assert "r-1: expected emergency got self_care" in page  # the last check's report
    assert page.index("v-two") < page.index("started")  # history, newest first
