"""The `seqkit` command: a root group that loads one task group on demand, and the one
place where errors become exit codes.

Exit codes: 0 success; 1 a data, config, model or runtime error, printed as one line
`seqkit: error: FILE:LINE: ...`; 2 a usage error; 130 interrupted (Ctrl-C).
--debug shows tracebacks. TensorFlow is imported only by commands that need it.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import click

from seqkit import __version__, progress, runtime
from seqkit.commands.common import Finite
from seqkit.errors import SeqkitError

# name -> (module with a `group`, one-line description); None: not built yet
TASKS = {
    "sentiment": ("seqkit.commands.sentiment", "text classification, many-to-one"),
    "ner": ("seqkit.commands.ner", "sequence tagging (named entities), many-to-many aligned"),
    "translation": ("seqkit.commands.translation",
                    "seq2seq encoder-decoder translation, many-to-many"),
    "caption": ("seqkit.commands.caption", "image captioning, one-to-many"),
    "lm": ("seqkit.commands.lm", "language model and text generation"),
}

# root commands that live in their own module (its `command`), loaded when they run
COMMANDS = {
    "compare": "seqkit.commands.compare",
    "gradients": "seqkit.commands.gradients",
    "info": "seqkit.commands.info",
}

_state = {"debug": False}


class _PipeClosed(Exception):
    """stdout's reader went away (`| head`). Not an OSError: Click's main turns EPIPE into
    exit code 1 before run() would see it."""


class TaskGroup(click.Group):
    """Lists the task groups without importing them; imports one only when it runs."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BrokenPipeError as exc:
            raise _PipeClosed() from exc

    def list_commands(self, ctx):
        return [*TASKS, *sorted([*super().list_commands(ctx), *COMMANDS])]

    def get_command(self, ctx, name):
        if name in COMMANDS:
            return importlib.import_module(COMMANDS[name]).command
        if name not in TASKS:
            return super().get_command(ctx, name)
        module, summary = TASKS[name]
        if module is None:
            return _not_built(name, summary)
        return importlib.import_module(module).group


def _not_built(name: str, summary: str) -> click.Command:
    @click.command(name, help=f"{summary} (not built yet)",
                   context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def command(args):
        raise SeqkitError(f"the {name} task is not built yet")

    command.short_help = f"{summary} (not built yet)"
    return command


@click.group(cls=TaskGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="seqkit")
@click.option("--debug", is_flag=True, help="Show tracebacks and TensorFlow's own logs.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr (no progress).")
@click.option("--progress-every", type=Finite(0.0), default=30.0, show_default=True,
              metavar="SECONDS", envvar="SEQKIT_PROGRESS_EVERY", show_envvar=True,
              help="When stderr is not a terminal, one progress line of train, evaluate "
                   "and predict every SECONDS (on a terminal: a bar).")
def cli(debug: bool, quiet: bool, progress_every: float) -> None:
    """RNN recipes for sequence problems, from the shell.

    \b
    seqkit TASK train DATA [--valid DATA] -o MODEL_DIR [options]
    seqkit TASK evaluate MODEL_DIR DATA [--json]
    seqkit TASK predict MODEL_DIR [INPUT|-]
    """
    _state["debug"] = debug
    runtime.debug = debug
    progress.every = progress_every
    if runtime.owns_process and not debug:
        runtime.keep_native_logs_off_stderr()
    setup_logging(debug, quiet)


@cli.command("tasks")
def tasks_command() -> None:
    """List the task groups, one per line."""
    width = max(len(name) for name in TASKS)
    for name, (module, summary) in TASKS.items():
        note = "" if module else " (not built yet)"
        click.echo(f"{name:<{width}}  {summary}{note}")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is now, not the stream it was created with (which a
    caller that swaps stderr, such as pytest's capture, may have closed since)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def setup_logging(debug: bool, quiet: bool) -> None:
    logger = logging.getLogger("seqkit")
    if not logger.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("seqkit: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.ERROR if quiet else logging.INFO)
    logger.propagate = False
    if not debug:
        import warnings

        warnings.filterwarnings("ignore")
        for name in ("absl", "tensorflow"):
            logging.getLogger(name).setLevel(logging.ERROR)


def _reader_gone() -> int:
    """stdout's reader went away (`| head`): stop quietly, and keep Python from complaining
    again when it flushes stdout at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 0


def _fail(message: str, code: int) -> int:
    if _state["debug"]:
        import traceback

        traceback.print_exc()
    click.echo(f"seqkit: error: {message}", err=True)
    return code


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return the exit code (the error funnel)."""
    try:
        result = cli.main(args=argv, prog_name="seqkit", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click.exceptions.Abort:
        click.echo("seqkit: interrupted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("seqkit: interrupted", err=True)
        return 130
    except click.ClickException as exc:  # usage errors too: one line, not Click's three
        message = " ".join(exc.format_message().split())
        ctx = getattr(exc, "ctx", None)
        if isinstance(exc, click.UsageError) and ctx is not None:
            message += f" (see '{ctx.command_path} --help')"
        click.echo(f"seqkit: error: {message}", err=True)
        return exc.exit_code
    except (_PipeClosed, BrokenPipeError):
        return _reader_gone()
    except SeqkitError as exc:
        return _fail(str(exc), 1)
    except MemoryError:
        return _fail("out of memory; try a smaller --batch-size or max_length", 1)
    except Exception as exc:  # a runtime error from below: one line unless --debug
        text = str(exc).strip().splitlines()
        return _fail(f"{type(exc).__name__}: {text[0] if text else ''} "
                     "(run with --debug for the traceback)", 1)


def main() -> None:
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(encoding="utf-8")
    runtime.owns_process = True
    code = run()
    try:  # what is still buffered, while a closed pipe can still be told apart
        sys.stdout.flush()
    except BrokenPipeError:
        code = _reader_gone() if code == 0 else code
    sys.exit(code)


if __name__ == "__main__":
    main()
