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


def main() -> None:
    """Run administrative tasks."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rrr_site.settings")
    level = verbosity_log_level(sys.argv[2:])
    if level is not None:
        os.environ["LOG_LEVEL"] = level
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
