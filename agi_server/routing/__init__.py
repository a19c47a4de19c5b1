"""Selection: the pure policy (``policy``) and the in-memory state around it (``router``)."""
