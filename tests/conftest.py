import pytest
from typer.testing import CliRunner

from kvplan.cli import app, load_commands
from tests.fakehub import FakeHub, start

load_commands()  # every command, as `kvplan --help` sees them


@pytest.fixture
def cli():
    """Run the CLI in-process: ``cli("estimate", "llama-3.1-8b")`` -> click Result."""
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args))

    return invoke


# The loopback fake Hub (tests/fakehub.py), started once per test module that asks for it.
@pytest.fixture(scope="module")
def _server():
    fake = FakeHub()
    server, _ = start(fake)
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def hub(_server, monkeypatch, tmp_path):
    """The fake Hub, emptied, with a fresh Hugging Face cache in tmp_path."""
    _server.repos.clear()
    _server.log.clear()
    monkeypatch.setenv("HF_ENDPOINT", _server.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for var in ("HF_HUB_CACHE", "HF_HUB_OFFLINE", "HF_TOKEN", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    # huggingface_hub reads HF_HUB_OFFLINE once, when it is first imported (constants.HF_HUB_OFFLINE, which
    # is_offline_mode() and its downloads return / check): a test that first imported it with the variable set would
    # leave the whole process offline. The fake Hub is online whatever ran before.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return _server
