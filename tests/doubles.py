"""Test doubles shared by several test modules. Imported as `tests.doubles` only: a component registers its name
when its class is made, and a second import under another module name (as pytest's `conftest`) would register
it twice."""

from __future__ import annotations

import asyncio

import s2s_server as s2s


class GatedJudge(s2s.OffJudge):
    """Test double: the "off" judge's answer to a finished turn, once the test opens the gate (set `judging`
    and `gate` to fresh events first; `judge="test-gated-judge"`)."""

    name = "test-gated-judge"
    judging: asyncio.Event
    gate: asyncio.Event

    async def judge(self, context, utterance, stage):
        if stage == "complete":
            GatedJudge.judging.set()
            await GatedJudge.gate.wait()
        return await super().judge(context, utterance, stage)
