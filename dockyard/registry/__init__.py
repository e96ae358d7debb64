"""The hub: Dockyard's own registry server (``dockyard registry serve``).

A separate program from the daemon: it shares the content store (dockyard.storage.content)
and the OCI image types, never the daemon, the Engine API or the runtime. Modules:
names (the distribution spec's grammar), errors (its error codes), manifests (what a pushed
manifest references), store (repositories as links to content-addressed blobs, uploads, tags,
referrers, metadata), gc (garbage collection), auth (htpasswd accounts, tokens, scopes),
hub (visibility, search), proxy (pull-through cache of an upstream registry), server (the
aiohttp app: distribution API, token endpoint, search, metrics), pages (web pages),
keys (the app's typed keys), config (flags and config file). The program is dockyard.cmd.registry.
"""
