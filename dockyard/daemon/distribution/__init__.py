"""Images to and from registries: pull, push, login, search, distribution inspect.

The wire protocol lives in ``dockyard.distribution`` (a lower layer: the daemon has no
HTTP); this package decides what to fetch and send, verifies it, stores it through the
content store and registers images exactly as ``load`` does.
"""
