"""The test harness itself (tests/conftest.py): what it shares between tests must not change what they test."""

from __future__ import annotations

import s2s_server as s2s
from s2s_config import validate_config
from tests.conftest import SharedModels


class CountingASR(s2s.ASR):
    """Test double (unregistered: no name): counts its loads, and keeps the language its load read."""

    loads = 0

    def load(self) -> None:
        CountingASR.loads += 1
        self.loaded_language = self.config.asr_language


async def test_a_shared_model_is_loaded_again_only_for_a_setting_its_load_read():
    """SharedModels loads once per set of the settings load() read: a server that differs only in a setting
    read later shares the loaded model but reads its own value of it; one that differs in a setting load() read
    gets its own load. The copy's load() does nothing."""
    shared = SharedModels()
    shared.CLASSES = (CountingASR,)
    CountingASR.loads = 0
    first = await shared.share(CountingASR(validate_config({"asr_language": "en"})))
    later = await shared.share(CountingASR(validate_config({"asr_language": "en", "whisper_beam_size": 3})))
    other = await shared.share(CountingASR(validate_config({"asr_language": "zh"})))
    first.load()
    assert CountingASR.loads == 2
    assert first.loaded_language == later.loaded_language == "en" and other.loaded_language == "zh"
    assert (first.config.whisper_beam_size, later.config.whisper_beam_size) == (1, 3)
    fake = s2s.FakeASR(validate_config({}))
    assert await shared.share(fake) is fake  # not one of CLASSES: as it came, to be loaded as usual
