"""benchmarks/voicebench_s2s.py --save-hearings writes each hearing of speech over the agent where
benchmarks/backchannel_clips.py --replay / --pass-time read it back, with the standard library only (soundfile
is not a dependency: with it missing every traced hearing raised, and the server cut the agent on each)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))  # its `from common import ...`

pytest.importorskip("voicebench")  # the adapter's module imports it (requirements-dev.txt)

from benchmarks import common  # noqa: E402
from benchmarks import voicebench_s2s as vb  # noqa: E402


def test_a_saved_hearing_reads_back_sample_for_sample(tmp_path: Path):
    pcm = (np.sin(np.arange(4800) / 7.0) * 12000).astype(np.int16)
    pcm[:3] = [-32768, 32767, 0]
    vb.save_hearing(tmp_path, pcm, "zh", ("Stop Stop", -0.41), started=12.5)
    vb.save_hearing(tmp_path, pcm[:160], None, None, started=13.0)
    rows = [json.loads(line) for line in (tmp_path / "hearings.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["file"] for r in rows] == ["h0000.wav", "h0001.wav"]
    assert rows[0] | {"file": None} == {"file": None, "language": "zh", "text": "Stop Stop", "logprob": -0.41,
                                        "at_s": 12.5, "duration_ms": 300}
    assert rows[1]["text"] == "" and rows[1]["logprob"] is None
    back = common.read_pcm16(tmp_path / rows[0]["file"])
    assert back.dtype == np.int16 and np.array_equal(back, pcm)
    assert np.array_equal(common.read_pcm16(tmp_path / rows[1]["file"]), pcm[:160])


def test_a_wav_that_is_not_mono_16_bit_is_refused(tmp_path: Path):
    import wave

    with wave.open(str(tmp_path / "stereo.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.zeros(64, dtype="<i2").tobytes())
    with pytest.raises(ValueError, match="mono 16-bit"):
        common.read_pcm16(tmp_path / "stereo.wav")
