"""The one error type users see: a single line naming the file, row or option and what is wrong."""


class ProtganError(Exception):
    """A problem with the user's input or options. The CLI prints it as one line and exits 2."""
