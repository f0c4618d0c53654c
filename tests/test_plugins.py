"""A user's own component, registered from their own module, selected by name: the README's example, run."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import websockets

from tests.conftest import Client

ROOT = Path(__file__).resolve().parent.parent


def readme_plugin_example(marker: str = "<!-- plugin-example:") -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    after = readme.split(marker, 1)[1]
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
        done = await client.turn("good morning")
        assert done["response"]["output"][0]["content"][0]["transcript"] == "GOOD MORNING !"
        # the server's guidance for this reply (a name just said) comes after the user's words: not read out
        done = await client.turn("Hi, my name is Alex.")
        assert done["response"]["output"][0]["content"][0]["transcript"] == "HI, MY NAME IS ALEX. !"
        await client.close()
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 15) == 0  # SIGTERM is a clean stop


def write_agree_plugin(folder: Path) -> dict[str, str]:
    """The README's strategy example as my_agree.py in `folder`; the environment that finds it."""
    (folder / "my_agree.py").write_text(readme_plugin_example("<!-- plugin-example-strategy:"), encoding="utf-8")
    return {"PYTHONPATH": str(folder)}


def test_a_plugins_own_settings_show_in_help_and_validate(tmp_path):
    env = write_agree_plugin(tmp_path)
    help_text = subprocess.run([sys.executable, str(ROOT / "s2s_server.py"), "--plugins", "my_agree", "--help"],
                               capture_output=True, text=True, env={**os.environ, **env, "COLUMNS": "10000"},
                               check=True).stdout
    assert "strategy agree settings:" in help_text and "--agree-opener-en" in help_text
    assert "policy agreeable settings:" in help_text and "Registered: agreeable, default." in help_text
    bad = subprocess.run([sys.executable, str(ROOT / "s2s_server.py"), "--plugins", "my_agree", "--agree-max-tokens",
                          "-1"], capture_output=True, text=True, env={**os.environ, **env})
    assert bad.returncode == 2 and "agree_max_tokens" in bad.stderr  # the plugin's setting validates too


async def test_a_users_strategy_with_its_own_setting_is_chosen_by_their_policy(tmp_path):
    env = write_agree_plugin(tmp_path)
    proc, port = await start_server_process("--plugins", "my_agree", "--policy", "agreeable", "--agree-opener-en",
                                            "Quite so.", "--asr", "fake", "--llm", "fake", "--tts", "fake",
                                            "--judge", "off", "--data-dir", str(tmp_path / "data"), env=env)
    try:
        client = Client(await websockets.connect(f"ws://127.0.0.1:{port}/v1/realtime"))
        created = await client.wait_for("session.created")
        assert "agree" in [row["name"] for row in created["session"]["s2s"]["strategy_table"]]
        await client.say("I think cats are better than dogs")
        judgement = await client.wait_for("s2s.judgement")
        done = await client.wait_for("response.done")
        assert judgement["action"] == "agree" and done["response"]["metadata"]["strategy"] == "agree"
        assert done["response"]["output"][0]["content"][0]["transcript"] == "Quite so."  # the opener alone
        done = await client.turn("How are you?")  # no opinion: a plain reply, as before
        assert done["response"]["metadata"]["strategy"] == "reply"
        await client.close()
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 15) == 0
