"""The one exception type for problems a user can fix (bad input, bad configuration, missing files).

Messages say what was expected, what was found and what to do. The CLI prints them without a traceback.
"""


class VandError(Exception):
    """A problem with the user's input or configuration, explained in the message."""
