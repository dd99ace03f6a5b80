"""The `harness` command: run, vtn, profiles, report, compare, capacity (one module per command or family).

Edge. The one place errors become exit codes: a user's mistake (`harness.core.exits.HarnessError`, click's usage
errors) is one line on stderr and its exit code — never a traceback; a bug still shows one.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from harness.cli.capacity import capacity_cmd
from harness.cli.results import audit_cmd, compare_cmd, profiles_cmd, report_cmd
from harness.cli.run import run_cmd
from harness.cli.vtn import vtn_cmd
from harness.core.exits import EXIT_SIGINT, EXIT_USAGE, HarnessError

__all__ = ["cli", "main"]


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"harness: error: {message}", err=True)
    sys.exit(code)


class _Commands(click.Group):
    """The group that maps every HarnessError its commands raise to one line and that error's exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HarnessError as exc:
            fail(str(exc), exc.exit_code)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="harness", prog_name="harness")
def cli() -> None:
    """Load-simulation harness for OpenADR 3 VTN servers.

    Simulates a fleet of VENs (homes, shops, EV chargers, PV...) that provision themselves and send
    telemetry reports on a schedule, and reports throughput, coordinated-omission-free latency and
    failures by class. With no --target, `harness run` starts an embedded VTN on 127.0.0.1.
    """


for _command in (run_cmd, vtn_cmd, profiles_cmd, report_cmd, compare_cmd, capacity_cmd, audit_cmd):
    cli.add_command(_command)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        fail("aborted", EXIT_SIGINT)
    except click.UsageError as exc:
        where = f"{exc.ctx.command_path}: " if exc.ctx else ""
        fail(f"{where}{exc.format_message()}")
    except click.ClickException as exc:
        fail(exc.format_message())
    except SystemExit:
        raise
    except KeyboardInterrupt:
        fail("interrupted", EXIT_SIGINT)
