"""FastAGI: the sans-IO wire protocol (``protocol``) and its asyncio shell (``session``, ``server``)."""
