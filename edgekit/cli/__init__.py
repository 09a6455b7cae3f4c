"""The edgekit command: a click group whose commands are thin layers over the Python API."""

from __future__ import annotations

import errno
import functools
import logging
import sys
from typing import ClassVar

import click

from edgekit import __version__
from edgekit.errors import EXIT_USAGE, EdgekitError


class _Group(click.Group):
    """Registers commands lazily, so `edgekit --help` imports no framework. Installed packages add
    commands through the `edgekit.commands` entry point group (the demo package adds `demo`)."""

    COMMANDS: ClassVar[dict[str, str]] = {
        "export": "edgekit.cli.export_cmd:export_cmd",
        "evaluate": "edgekit.cli.evaluate_cmd:evaluate_cmd",
        "benchmark": "edgekit.cli.benchmark_cmd:benchmark_cmd",
        "targets": "edgekit.cli.targets_cmd:targets_cmd",
        "devices": "edgekit.cli.devices_cmd:devices_cmd",
        "doctor": "edgekit.cli.doctor_cmd:doctor_cmd",
        "datasets": "edgekit.cli.datasets_cmd:datasets_cmd",
        "compress": "edgekit.cli.compress_cmd:compress_cmd",
        "build-engine": "edgekit.cli.build_engine_cmd:build_engine_cmd",
        "bundle": "edgekit.cli.bundle_cmd:bundle_cmd",
        "verify": "edgekit.cli.bundle_cmd:verify_cmd",
        "run": "edgekit.cli.run_cmd:run_cmd",
        "cache": "edgekit.cli.cache_cmd:cache_cmd",
        "report": "edgekit.cli.report_cmd:report_cmd",
        "search": "edgekit.cli.search_cmd:search_cmd",
        "diff": "edgekit.cli.diff_cmd:diff_cmd",
    }

    @staticmethod
    def _commands() -> dict[str, str]:
        from importlib.metadata import entry_points

        plugins = {e.name: e.value for e in entry_points(group="edgekit.commands")}
        return {**plugins, **_Group.COMMANDS}

    def list_commands(self, ctx):
        return list(self._commands())

    def get_command(self, ctx, name):
        import importlib

        spec = self._commands().get(name)
        if spec is None:
            return None
        module, _, attr = spec.partition(":")
        return getattr(importlib.import_module(module), attr)


def unsafe_load_option(command):
    """`--unsafe-load` on a command that loads model files: within it, loaders may run code a file carries
    (Keras Lambda layers, custom classes), which they otherwise refuse naming the layer."""

    @click.option(
        "--unsafe-load",
        "unsafe_load",
        is_flag=True,
        help="Let loading a model file run the code it carries (Keras Lambda layers, custom classes). "
        "Only for files you trust.",
    )
    @functools.wraps(command)
    def wrapped(*args, unsafe_load: bool = False, **kwargs):
        from edgekit.sources.trust import unsafe_load as allowing

        with allowing(unsafe_load):
            return command(*args, **kwargs)

    return wrapped


def _use_catalog(ctx, param, value) -> None:
    if value:
        import os

        from edgekit.catalog import clear_caches
        from edgekit.catalog.loader import USER_CATALOG

        os.environ[USER_CATALOG] = str(value)
        clear_caches()


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgekit")
@click.option(
    "--catalog",
    type=click.Path(exists=True, file_okay=False),
    expose_value=False,
    is_eager=True,
    callback=_use_catalog,
    help="A folder of your own targets, schemes.yaml, quantizations.yaml and devices/*.yaml on top of the built-in "
    "catalog (same as EDGEKIT_CATALOG); a file of the same name replaces the built-in one.",
)
def cli() -> None:
    """Take trained models to edge devices and prove they still work there."""


_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


class Terminated(BaseException):
    """SIGTERM, raised where the process is, so every cleanup (staging folders, workers) runs as for Ctrl-C."""


def _terminate(signum, frame) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> None:
    """Entry point: maps EdgekitError to its exit code with a one-paragraph message, no traceback. A failed
    command removes the output folder it created if nothing was written there."""
    import signal

    from edgekit.artifact import forget_out_dirs, remove_unused_out_dirs

    previous = signal.signal(signal.SIGTERM, _terminate)
    # torchao (imported by transformers and ExecuTorch when they need it) registers an Enum with torch's
    # pytree, which logs a deprecation warning on every command: torch's business, not the user's
    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)
    forget_out_dirs()  # a command removes only what it created
    try:
        _run(argv)
    except SystemExit as e:
        if e.code not in (0, None):
            remove_unused_out_dirs()
        raise
    except BaseException:
        remove_unused_out_dirs()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    sys.exit(0)


def _run(argv: list[str] | None) -> None:
    try:
        cli.main(args=argv, prog_name="edgekit", standalone_mode=False)
    except Terminated:
        click.echo("Terminated; nothing half-written was left in place.", err=True)
        sys.exit(143)
    except EdgekitError as e:
        click.secho(f"error: {e.message}", err=True, fg="red")
        if e.hint:
            click.echo(e.hint, err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Abort as e:
        if isinstance(e.__cause__, KeyboardInterrupt):  # click turns Ctrl-C inside a command into Abort
            click.echo("Interrupted; nothing half-written was left in place.", err=True)
            sys.exit(130)
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as e:
        e.show()
        sys.exit(EXIT_USAGE if isinstance(e, click.UsageError) else e.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted; nothing half-written was left in place.", err=True)
        sys.exit(130)
    except OSError as e:  # a full disk, a read-only or forbidden folder: the system's words, no traceback
        if e.errno not in _DISK_ERRORS:
            raise
        where = f" ({e.filename})" if e.filename else ""
        click.secho(f"error: {e.strerror}{where}; nothing half-written was left in place.", err=True, fg="red")
        sys.exit(1)
