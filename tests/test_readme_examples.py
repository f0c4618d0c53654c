"""The README's client examples ("Talk to it"), run as a user would run them, against a real server on port 0 with
the test doubles: the typed turn with the official `openai` package, and the spoken turn with `websockets`; and
docs/judge_sft.md's use of the judge, from the repository's folder as it says."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import textwrap
import wave
from pathlib import Path

from tests.conftest import speech

ROOT = Path(__file__).resolve().parent.parent


def readme_example(marker: str, doc: str = "README.md") -> str:
    """The first ```python block after `<!-- marker:` in the README (or another page), unindented."""
    after = (ROOT / doc).read_text(encoding="utf-8").split(f"<!-- {marker}:", 1)[1]
    return textwrap.dedent(re.search(r"```python\n(.*?)```", after, re.S).group(1))


async def run_script(code: str, folder: Path, cwd: Path | None = None) -> str:
    """Run `code` as a script saved in `folder`, from `cwd` (default: `folder`; a script run from the repository's
    folder imports its modules), the event loop staying free for the server; its stdout."""
    (folder / "example.py").write_text(code, encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(sys.executable, str(folder / "example.py"), cwd=str(cwd or folder),
                                                env={**os.environ, "PYTHONPATH": str(ROOT)} if cwd else None,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_the_readmes_sdk_example_prints_the_reply_once_it_has_played(make_server, tmp_path):
    h = await make_server(audio_lead_ms=500)
    code = readme_example("sdk-example").replace("127.0.0.1:8765", f"127.0.0.1:{h.server.port}")
    assert "You said: Hello" in await run_script(code, tmp_path)  # the fake LLM repeats the words


async def test_the_readmes_spoken_example_is_heard_and_answered(make_server, tmp_path, speech_dir):
    h = await make_server(audio_lead_ms=500)
    with wave.open(str(tmp_path / "question.wav"), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(16000)
        f.writeframes(speech("what is the capital of France", speech_dir).astype("<i2").tobytes())
    code = readme_example("spoken-example").replace("127.0.0.1:8765", f"127.0.0.1:{h.server.port}")
    out = await run_script(code, tmp_path)
    assert "heard: hello there" in out and "said: You said: hello there" in out  # the fake ASR hears "hello there"


async def test_the_judge_docs_example_runs_from_the_repository_folder(tmp_path):
    out = (await run_script(readme_example("judge-example", "docs/judge_sft.md"), tmp_path, cwd=ROOT)).split()
    label, confidence, end_of_turn = out[0], float(out[1]), float(out[2])
    assert label in ("none", "interrupt") and 0 <= confidence <= 1 and 0 <= end_of_turn <= 1, out  # a partial's
