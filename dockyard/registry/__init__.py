"""The hub: Dockyard's own registry server (``dockyard registry serve``).

A separate program from the daemon: it shares the content store (dockyard.storage.content)
and the OCI image types, never the daemon, the Engine API or the runtime. Modules:
names (the distribution spec's grammar), manifests (what a pushed manifest references),
store (repositories as links to content-addressed blobs, uploads, tags, referrers, metadata),
gc (garbage collection), auth (htpasswd accounts, tokens, scopes), server (the aiohttp app:
distribution API, token endpoint, search, web pages, metrics), config (flags and config file).
"""
