"""The registry client: the OCI distribution / Docker registry HTTP API v2 on the wire.

A lower layer (beside storage and network): it knows HTTP, TLS and registry auth, and
nothing of images, layers or the daemon. ``dockyard.daemon.distribution`` drives it
through the narrow Protocol it declares.
"""
