"""The one base of errors a user can fix: entry points report them as `error: ...`, exit 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input, params or files that the user can correct; the message names what and where.

    Every flow, stage script and CLI command prints it on stderr without a traceback and
    exits with status 2 (`dicepipe.entry.run_command`); any other exception is a failure of
    the run (status 1).
    """
