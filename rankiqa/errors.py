"""Errors that mean "the user asked for something wrong", shown by the CLI as one line."""


class UserError(Exception):
    """A bad input or option; the message names the file or option and the reason."""


USER_ERRORS = (UserError, ValueError, TypeError, KeyError, FileNotFoundError, NotADirectoryError, PermissionError)
