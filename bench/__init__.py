"""Dockyard's benchmark suite: Dockyard against Debian's docker.io and podman, driven by the same
docker CLI and docker-py, with the physical floor beside them. Entry point: ``python -m bench``."""
