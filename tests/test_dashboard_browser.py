"""The dashboard in a real browser: the `wenzhen dashboard` process on a free port, Debian's
headless Chromium driven by Playwright. Sign in through the form, watch a newly flagged case
arrive over server-sent events without a reload, claim it, and look at it on a phone-sized
screen. Screenshots are kept under `artifacts/` in the repository root."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, async_playwright, expect
from redis.asyncio import Redis

from dashboard import hash_password
from dialog.events import Escalation
from dialog.session import Case, Disposition, Turn
from dialog.team import Member, Role, TicketStatus
from safety import Level
from storage.redis_store import RedisStore
from storage.team_board import TeamBoard

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "a browser password"
WAIT_MS = 15_000

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's Chromium at /usr/bin/chromium: apt-get install chromium",
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def dashboard_url(
    tmp_path: Path, redis_url: str, redis_store: RedisStore, key_prefix: str
) -> AsyncIterator[str]:
    """`wenzhen dashboard` in its own process, on the test Redis, with one doctor; its base URL."""
    port = _free_port()
    config = tmp_path / "wenzhen.toml"
    config.write_text(
        "[[teams]]\n"
        'name = "general"\n'
        "[[teams.members]]\n"
        'id = "drli"\n'
        'name = "Dr Li"\n'
        'role = "doctor"\n'
        f'password_hash = "{hash_password(PASSWORD)}"\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("WENZHEN_")}
    env.update(
        REDIS_URL=redis_url,
        WENZHEN_CONFIG=str(config),
        WENZHEN_DATA_DIR=str(tmp_path / "data"),
        WENZHEN_DASHBOARD_HOST="127.0.0.1",
        WENZHEN_DASHBOARD_PORT=str(port),
    )
    log_path = tmp_path / "dashboard.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from bot.cli import main; main()",
            "dashboard",
            "--redis-prefix",
            key_prefix,
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=log,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        if not await _came_up(base, process):
            raise AssertionError(
                f"wenzhen dashboard did not come up:\n{log_path.read_text(errors='replace')}"
            )
        yield base
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
    logged = log_path.read_text(encoding="utf-8", errors="replace")
    for secret in (PASSWORD, "chest feels tight", "/login/token/"):
        assert secret not in logged, f"the dashboard logged {secret!r}"


async def _came_up(base: str, process: asyncio.subprocess.Process) -> bool:
    """Whether the dashboard answers /healthz within 30 s (False as soon as it exits)."""
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            if process.returncode is not None:
                return False
            try:
                async with session.get(f"{base}/healthz") as response:
                    if response.status == 200:
                        return True
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    return False


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


async def _flag(redis: Redis, prefix: str, case_id: str, complaint: str) -> None:
    case = Case(
        case_id=case_id,
        patient_id=f"patient-{case_id}",
        rules_version="test",
        who="self",
        age=61.0,
        sex="F",
        complaint=complaint,
        protocols=["chest_pain"],
        level=Level.EMERGENCY_AMBULANCE,
        rule="chest_pain.cardiac_features",
        red_flags=["chest_pain_cardiac"],
        answers={"sweating": "yes", "pain_duration_minutes": 30.0},
        disposition=Disposition(
            level=Level.EMERGENCY_AMBULANCE,
            rule="chest_pain.cardiac_features",
            protocol="chest_pain",
            reason="chest pain with sweating over 50",
            red_flags=("chest_pain_cardiac",),
        ),
        transcript=[
            Turn(role="patient", text=complaint),
            Turn(role="bot", text="Call 120 now. Are you sweating?"),
            Turn(role="system", text="flagged for the doctor team"),
            Turn(role="patient", text="yes, a lot"),
        ],
    )
    await RedisStore(redis, prefix=prefix).save_case(case)
    escalation = Escalation(
        case_id=case_id,
        patient_id=case.patient_id,
        reason="red_flag",
        priority=0,
        level=case.level,
        flags=("chest_pain_cardiac",),
    )
    await TeamBoard(redis, prefix=prefix).flag(escalation, "general", case, "en")


async def test_a_doctor_sees_a_case_arrive_live_and_claims_it(
    dashboard_url: str, browser: Browser, redis: Redis, key_prefix: str
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    expect.set_options(timeout=WAIT_MS)  # every expectation below waits at most this long
    board = TeamBoard(redis, prefix=key_prefix)
    await _flag(redis, key_prefix, "c-earlier", "headache since this morning")

    desktop = await browser.new_context(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    desktop.on("weberror", lambda error: errors.append(str(error.error)))
    page = await desktop.new_page()
    page.set_default_timeout(WAIT_MS)
    await page.goto(f"{dashboard_url}/login")
    await page.fill("input[name=member]", "drli")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{dashboard_url}/cases")
    await expect(page.locator('tr[data-case="c-earlier"]')).to_be_visible()
    await expect(page.locator("#live")).to_have_attribute("data-state", "on")

    # a new case is flagged while the list is open: its row arrives without a reload
    await page.evaluate("window.__sameDocument = true")
    await _flag(redis, key_prefix, "c-live", "my chest feels tight and I am sweating")
    row = page.locator('tr[data-case="c-live"]')
    await expect(row).to_be_visible()
    await expect(row).to_contain_text("my chest feels tight")
    assert await page.evaluate("window.__sameDocument === true"), "the page was reloaded"
    await page.screenshot(path=str(ARTIFACTS / "dashboard-list.png"), full_page=True)

    await row.get_by_role("button", name="Claim").click()
    await page.wait_for_url(f"{dashboard_url}/cases/c-live")
    await expect(page.locator("#case-status")).to_have_text("claimed")
    await expect(page.locator("#claimed-by")).to_have_text("by drli")
    await expect(page.locator(".turn.role-patient").first).to_contain_text("my chest feels tight")
    ticket = await board.get("c-live")
    assert ticket is not None
    assert ticket.status is TicketStatus.CLAIMED
    assert ticket.claimed_by == "drli"
    assert [action.kind for _, action in await board.actions("test", block_ms=100)] == ["claimed"]
    await page.screenshot(path=str(ARTIFACTS / "dashboard-case.png"), full_page=True)

    await page.goto(f"{dashboard_url}/cases")
    await expect(page.locator('tr[data-case="c-live"] .status')).to_have_text("claimed")

    # the same doctor on a phone
    phone = await browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        storage_state=await desktop.storage_state(),
    )
    phone.on("weberror", lambda error: errors.append(str(error.error)))
    handset = await phone.new_page()
    handset.set_default_timeout(WAIT_MS)
    await handset.goto(f"{dashboard_url}/cases")
    await expect(handset.locator('tr[data-case="c-live"]')).to_be_visible()
    await expect(handset.locator("#live")).to_have_attribute("data-state", "on")
    assert await handset.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    claim = handset.locator('tr[data-case="c-earlier"] button[data-action="claim"]')
    box = await claim.bounding_box()
    assert box is not None
    assert box["height"] >= 44, box  # a tap target
    await handset.screenshot(path=str(ARTIFACTS / "dashboard-phone-list.png"), full_page=True)

    # the phone shows the case; closing it elsewhere updates the page live
    await handset.goto(f"{dashboard_url}/cases/c-live")
    await expect(handset.locator("#live")).to_have_attribute("data-state", "on")
    assert await handset.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    await handset.screenshot(path=str(ARTIFACTS / "dashboard-phone-case.png"), full_page=True)
    await board.close("c-live", Member(id="drli", name="Dr Li", role=Role.DOCTOR), via="dashboard")
    await expect(handset.locator("#case-status")).to_have_text("closed")
    assert errors == [], errors  # no script errors on any page
    await phone.close()
    await desktop.close()
