"""The README's client examples ("Talk to it"), run as a user would run them, against a real server on port 0 with
the test doubles: the typed turn with the official `openai` package, and the spoken turn with `websockets`."""

from __future__ import annotations

import asyncio
import re
import sys
import textwrap
import wave
from pathlib import Path

from tests.conftest import speech

ROOT = Path(__file__).resolve().parent.parent


def readme_example(marker: str) -> str:
    """The first ```python block after `<!-- marker:` in the README, unindented."""
    after = (ROOT / "README.md").read_text(encoding="utf-8").split(f"<!-- {marker}:", 1)[1]
    return textwrap.dedent(re.search(r"```python\n(.*?)```", after, re.S).group(1))


async def run_script(code: str, folder: Path) -> str:
    """Run `code` as a script in `folder` (the event loop stays free for the server); its stdout."""
    (folder / "example.py").write_text(code, encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(sys.executable, "example.py", cwd=str(folder),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_the_readmes_sdk_example_prints_the_reply_once_it_has_played(make_server, tmp_path):
    h = await make_server(audio_lead_ms=500)
    code = readme_example("sdk-example").replace("127.0.0.1:8765", f"127.0.0.1:{h.server.port}")
    code = "import asyncio\n\nasync def main():\n" + textwrap.indent(code, "    ") + "\nasyncio.run(main())\n"
    # (the snippet awaits at its top level, as in a notebook or `python -m asyncio`)
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
