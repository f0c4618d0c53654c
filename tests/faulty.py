"""Fault-injecting test doubles, registered as "faulty" in the ASR, LLM and TTS families (a plugin:
`--plugins tests.faulty --asr faulty --llm faulty --tts faulty`). They behave as the fakes until a session
asks for a fault, so one server can run one faulty session among healthy ones:

- ASR: the turn's audio starts with the samples [MAGIC, k]: fault FAULTS[k] (push-to-talk at 16 kHz keeps
  samples exact).
- LLM: the session's instructions (the system message) contain "FAULT-llm-<fault>".
- TTS: the instructions contain "FAULT-tts-<fault>"; the faulty LLM then puts the marker in its reply,
  which is the text TTS sees.

Faults: raise (at once), hang (never yields: the stage's deadline ends it), slow (SLOW_S before the first
item and a thirtieth of it before each other, within the deadlines), die (one item, then an exception: a
stream that dies mid-way).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import numpy as np

import s2s_server as s2s

FAULTS = ("raise", "hang", "slow", "die")
MAGIC = 31337
SLOW_S = 0.3
_MARK = re.compile(r"FAULT-(asr|llm|tts)-(raise|hang|slow|die)")


def asr_marker(fault: str) -> np.ndarray:
    """The first samples of audio that makes the faulty ASR fail with `fault`."""
    return np.array([MAGIC, FAULTS.index(fault)], dtype=np.int16)


def fault_in(text: str, stage: str) -> str | None:
    return next((m.group(2) for m in _MARK.finditer(text) if m.group(1) == stage), None)


class InjectedFault(RuntimeError):
    pass


async def misbehave(fault: str | None, items: AsyncIterator, stage: str) -> AsyncIterator:
    """Pass `items` through, misbehaving as `fault` says."""
    if fault == "raise":
        raise InjectedFault(f"{stage} raised")
    if fault == "hang":
        await asyncio.Event().wait()  # forever; cancelled by the stage's deadline
    n = 0
    async for item in items:
        if fault == "slow":
            await asyncio.sleep(SLOW_S if n == 0 else SLOW_S / 30)
        yield item
        n += 1
        if fault == "die":
            raise InjectedFault(f"{stage} died mid-stream")


class FaultyASR(s2s.FakeASR):
    name = "faulty"

    async def transcribe(self, audio: np.ndarray) -> AsyncIterator[str]:
        fault = FAULTS[audio[1]] if len(audio) > 1 and audio[0] == MAGIC and 0 <= audio[1] < len(FAULTS) else None
        async for piece in misbehave(fault, super().transcribe(audio), "asr"):
            yield piece


class FaultyLLM(s2s.FakeLLM):
    name = "faulty"

    async def generate(self, messages: list[dict[str, str]], *, max_tokens: int) -> AsyncIterator[str]:
        system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
        tts_fault = fault_in(system, "tts")
        if tts_fault:
            yield f"FAULT-tts-{tts_fault} is what TTS will see. "
        async for delta in misbehave(fault_in(system, "llm"), super().generate(messages, max_tokens=max_tokens),
                                     "llm"):
            yield delta


class FaultyTTS(s2s.FakeTTS):
    name = "faulty"

    async def synthesize(self, text: str, *, voice: str | None = None) -> AsyncIterator[np.ndarray]:
        async for chunk in misbehave(fault_in(text, "tts"), super().synthesize(text, voice=voice), "tts"):
            yield chunk
