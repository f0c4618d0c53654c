"""A user's own component, registered from their own module, selected by name: the README's example, run."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import websockets

from tests.conftest import Client

ROOT = Path(__file__).resolve().parent.parent


def readme_plugin_example() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    after = readme.split("<!-- plugin-example", 1)[1]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


async def start_server_process(*args: str, env: dict[str, str] | None = None):
    """`python s2s_server.py ARGS --port 0` as a real process; returns it and the port it logged."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "s2s_server.py"), "--port", "0", *args, cwd=str(ROOT),
        env={**os.environ, **(env or {})}, stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL)
    lines = []
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), 120)).decode()
        if not line:
            raise AssertionError("server exited:\n" + "".join(lines))
        lines.append(line)
        if match := re.search(r"serving ws://[\d.]+:(\d+)/", line):
            return proc, int(match.group(1))


async def test_a_users_registered_component_is_selected_by_name(tmp_path):
    (tmp_path / "my_models.py").write_text(readme_plugin_example(), encoding="utf-8")
    proc, port = await start_server_process("--plugins", "my_models", "--llm", "shout", "--asr", "fake",
                                            "--data-dir", str(tmp_path / "data"),
                                            "--tts", "fake", "--judge", "off", env={"PYTHONPATH": str(tmp_path)})
    try:
        client = Client(await websockets.connect(f"ws://127.0.0.1:{port}/v1/realtime"))
        text = {"type": "input_text", "text": "good morning"}
        await client.send("conversation.item.create", item={"type": "message", "role": "user", "content": [text]})
        await client.send("response.create")
        done = await client.wait_for("response.done")
        assert done["response"]["output"][0]["content"][0]["transcript"] == "GOOD MORNING !"
        await client.close()
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 15) == 0  # SIGTERM is a clean stop
