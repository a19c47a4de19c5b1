"""didrouter: caller-ID (DID) and trunk selection for outbound Asterisk dialers."""

__version__ = "0.1.0"
