"""Errors that mean "the user asked for something wrong", shown by the CLI as one line."""


class UserError(Exception):
    """A bad input or option; the message names the file or option and the reason."""


USER_ERRORS = (UserError, ValueError, OSError)
"""Exceptions the CLI reports as one ``Error: ...`` line (exit code 2). Anything else is a bug and
keeps its traceback. ``OSError`` covers missing files, permissions and a full disk."""
