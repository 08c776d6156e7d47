import pytest
from typer.testing import CliRunner

from kvplan.cli import app, load_commands

load_commands()  # every command, as `kvplan --help` sees them


@pytest.fixture
def cli():
    """Run the CLI in-process: ``cli("estimate", "llama-3.1-8b")`` -> click Result."""
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args))

    return invoke
