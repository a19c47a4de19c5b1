"""The one exception tree of didrouter.

Every error the project raises on purpose derives from :class:`DidrouterError`, so
callers at the edges (CLI, connection handler) can catch "ours" without catching
programming errors or cancellation.
"""


class DidrouterError(Exception):
    """Base of every error didrouter raises on purpose."""


class ConfigError(DidrouterError):
    """A configuration could not be loaded or did not validate.

    ``problems`` holds every :class:`agi_server.config.validate.Problem` found, so a
    caller can print them all, not just the first.
    """

    def __init__(self, message: str, problems: tuple = ()) -> None:
        super().__init__(message)
        self.problems = problems


class ProtocolError(DidrouterError):
    """The peer broke the AGI or AMI wire protocol (garbage, oversize, truncation)."""


class PeerGone(DidrouterError):
    """The peer closed the connection or stopped answering within the deadline."""


class StoreError(DidrouterError):
    """The CDR store (PostgreSQL or the spool) failed."""


class AmiError(DidrouterError):
    """The Asterisk Manager Interface refused us or misbehaved (e.g. login failed)."""


class ListenError(DidrouterError):
    """The FastAGI port could not be opened (in use, no permission, bad address)."""
