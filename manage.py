#!/usr/bin/env python
"""Django's command-line utility for RRR."""

import os
import sys

# A command's --verbosity also sets the level of the JSON logs on stderr (settings read
# LOG_LEVEL once, before the command parses its options): 0 errors only, 1 warnings, 2 info,
# 3 debug. Without the flag, LOG_LEVEL (default INFO) applies.
LOG_LEVELS = {"0": "ERROR", "1": "WARNING", "2": "INFO", "3": "DEBUG"}


def verbosity_log_level(argv: list[str]) -> str | None:
    """Return the log level the command line's ``-v N`` / ``--verbosity N`` asks for, if any."""
    for i, arg in enumerate(argv):
        for flag in ("-v", "--verbosity"):
            if arg == flag and i + 1 < len(argv):
                return LOG_LEVELS.get(argv[i + 1])
            if arg.startswith(flag + "=") or (flag == "-v" and arg[2:] in LOG_LEVELS):
                return LOG_LEVELS.get(arg.split("=", 1)[-1] if "=" in arg else arg[2:])
    return None


def exit_now(code: object) -> None:
    """End the process as ``sys.exit(code)`` would, without tearing the interpreter down.

    Freeing every module and object one by one at exit costs 0.1-0.3 s of CPU (Django alone
    0.1 s; pandas, numpy and pyarrow as much again) and serves nothing once the command is done.
    What a normal exit does that matters still happens, in the same order: non-daemon threads
    are waited for, atexit handlers run (logging's flush among them), database connections
    close, the standard streams are flushed; then the OS frees the rest.
    """
    import atexit
    import threading

    # What the interpreter does first at exit: threading's exit hooks (thread pools stop their
    # idle workers), then every non-daemon thread is waited for.
    threading._shutdown()
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message"): the message on stderr, status 1
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    if "django.db" in sys.modules:
        from django.db import connections

        connections.close_all()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # a closed pipe (`manage.py help | head`)
            pass
        except OSError as exc:  # e.g. a full disk: the output is lost, so is the success
            if stream is sys.stdout:
                print(f"error: standard output not written: {exc}", file=sys.stderr)
                status = status or 120  # what Python's own exit reports
    os._exit(status & 0xFF)


def main() -> None:
    """Run administrative tasks."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rrr_site.settings")
    level = verbosity_log_level(sys.argv[2:])
    if level is not None:
        os.environ["LOG_LEVEL"] = level
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except SystemExit as exc:  # --help, a CommandError's exit status, sys.exit() in a command
        exit_now(exc.code)
    except BrokenPipeError:
        if not stdout_reader_gone():
            raise  # another pipe or socket: a real error, with its traceback
        # The reader of our output went away (`manage.py backtest | head -1`) before the command
        # was done: no traceback, and the status a command killed by SIGPIPE has (128 + 13),
        # since what came after that write did not happen.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        exit_now(141)
    exit_now(0)


def stdout_reader_gone() -> bool:
    """Whether standard output is a pipe whose reading end is closed (poll reports POLLERR)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), no file descriptor
        return False


if __name__ == "__main__":
    main()
