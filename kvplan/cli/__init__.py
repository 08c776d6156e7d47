"""The ``kvplan`` command line: parse, call one library function, render. Nothing is computed here.

Each command module (:mod:`kvplan.cli.estimate`, ...) adds its commands to the one typer app of
:mod:`kvplan.cli.common` when imported. :func:`load_commands` imports only the module the command
line names (every module for --help and unknown names), the lazy-subcommand pattern of click's
documentation: `kvplan estimate` then neither imports nor builds the other commands.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import sys

import typer

from kvplan.cli.common import app, err

__all__ = ["COMMAND_MODULES", "app", "load_commands", "main", "run"]

# Command -> module, in the order `kvplan --help` lists them.
COMMAND_MODULES = {
    "estimate": "kvplan.cli.estimate",
    "models": "kvplan.cli.models",
    "show": "kvplan.cli.models",
    "gpus": "kvplan.cli.models",
    "import": "kvplan.cli.models",
    "capacity": "kvplan.cli.capacity",
    "plan": "kvplan.cli.plan",
    "check-log": "kvplan.cli.checklog",
    "cost": "kvplan.cli.cost",
    "rope": "kvplan.cli.rope",
    "profile": "kvplan.cli.profile",
}


def load_commands(argv: list[str] | None = None) -> typer.Typer:
    """Register the command modules ``argv`` needs; every module when ``argv`` is None."""
    first = next((a for a in argv if not a.startswith("-")), None) if argv is not None else None
    wanted = [COMMAND_MODULES[first]] if first in COMMAND_MODULES else COMMAND_MODULES.values()
    for module in dict.fromkeys(wanted):
        importlib.import_module(module)
    return app


def main(argv: list[str] | None = None) -> int:
    """Console entry point: usage errors become one line and exit code 2."""
    try:  # typer >= 0.2x vendors click as typer._click; older typer uses click itself
        from typer._click import exceptions as click_exc
    except ImportError:  # pragma: no cover
        from click import exceptions as click_exc

    argv = sys.argv[1:] if argv is None else argv
    try:
        load_commands(argv)
        result = app(args=argv, prog_name="kvplan", standalone_mode=False)
    except click_exc.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `kvplan`: show the help, not an error
            typer.echo(exc.format_message())
            return 0
        err(f"kvplan: error: {exc.format_message()}")
        return 2
    except click_exc.ClickException as exc:
        err(f"kvplan: error: {exc.format_message()}")
        return exc.exit_code
    except typer.Abort:
        err("kvplan: aborted")
        return 1
    except typer.Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt:
        err("kvplan: interrupted")
        return 130
    except Exception as exc:  # a bug, not bad input: one line, traceback only on request
        if os.environ.get("KVPLAN_DEBUG"):
            raise
        err(f"kvplan: internal error: {type(exc).__name__}: {exc} (set KVPLAN_DEBUG=1 for the traceback)")
        return 1
    return result if isinstance(result, int) else 0


def run() -> None:
    """The ``kvplan`` command (console script and ``python -m kvplan``): :func:`main`, then the process ends at once.

    What a normal exit does first is done here (the atexit handlers, standard output and error flushed); what it
    does after, freeing every object of the interpreter one by one (pydantic's schemas, typer, the latency memos), is
    left to the operating system: 0.03-0.05 s of CPU after a `plan --rate` or `cost`, a tenth of the command
    (benchmarks/latency_speed.py). kvplan writes its files with ``with`` blocks or ``write_text``: none is left open.
    A reader that closed the pipe early (``kvplan models | head -1``) gets no error message."""
    code = main()
    if hasattr(atexit, "_run_exitfuncs"):  # CPython's: what Py_Finalize runs first
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe or stream: nothing more can be said on it
            stream.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
