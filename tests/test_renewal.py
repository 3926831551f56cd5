"""Background renewals end when stopped, even when a cancellation is lost inside the job (as when
a Redis command's own timeout turns it into a TimeoutError); and the service forgets a patient's
lock once nobody holds it."""

from __future__ import annotations

import asyncio

from bot.telegram.renewal import STOP_WAIT, Renewal
from dialog.service import ConsultationService
from tests.helpers import Chat


async def test_a_renewal_whose_job_swallows_cancellation_still_ends() -> None:
    calls = 0
    swallowed, running = asyncio.Event(), asyncio.Event()

    async def job() -> bool:
        nonlocal calls
        calls += 1
        running.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:  # what a lost cancellation looks like from outside
            swallowed.set()
        return True

    renewal = Renewal(job, every=0.01)
    async with asyncio.timeout(5):
        await running.wait()
    started = asyncio.get_running_loop().time()
    await renewal.stop()
    assert swallowed.is_set()
    assert renewal._task.done()
    assert asyncio.get_running_loop().time() - started < STOP_WAIT
    assert calls == 1  # the loop saw the stop flag and did not go round again


async def test_a_renewal_repeats_until_its_job_says_done() -> None:
    left = 3

    async def job() -> bool:
        nonlocal left
        left -= 1
        return left > 0

    renewal = Renewal(job, every=0.01)
    async with asyncio.timeout(5):
        await asyncio.wait({renewal._task})
    assert left == 0


async def test_the_service_keeps_no_lock_for_patients_it_is_not_serving(service: ConsultationService) -> None:
    chats = [Chat(service, patient_id=f"p{n}") for n in range(20)]
    await asyncio.gather(*(chat.say("I have a cough") for chat in chats))
    assert service._locks == {}
