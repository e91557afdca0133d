"""The one exception type for mistakes a user can fix.

Library code raises :class:`KitError` for expected user errors (a missing or
malformed file, a bad argument, an unknown config key). The CLI turns it into a
single ``error: ...`` line on stderr and exit code 2; anything else is a bug and
keeps its traceback.
"""


class KitError(Exception):
    """An error caused by the user's input; the message names the problem and the fix."""
