"""The classic builder (``POST /build``), one module per concern.

- ``dockerfile``: lines into instructions (directives, continuations, heredocs, flags, forms)
- ``shellwords``: quotes, escapes and ``$var`` substitution; ``instructions``: metadata steps
- ``context``: the uploaded (or remote) context unpacked, its Dockerfile and ``.dockerignore``
  (``dockyard.apitypes.dockerignore``: Docker's pattern semantics, shared with the CLI)
- ``copy``: COPY/ADD sources resolved inside their root and written into a scratch rootfs;
  ``chown``: ``--chown`` names from the image's own passwd/group files
- ``run``: RUN containers through the container service's public operations
- ``cache``: the step cache table; ``images``: the image store as the builder needs it
- ``builder``: stages (in parallel), steps, the cache probe and the stream; ``stream``: message shapes
- ``squash``: ``--squash``'s merge of overlay layers; ``platforms``: ``--platform``, ``FROM --platform``
- ``service``: the BuildService the API router calls (build, prune, df, start-up cleanup)
"""
