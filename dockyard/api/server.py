"""Wires the routers to the daemon's services: the API's composition root."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.app import make_app
from dockyard.api.routers import build as build_router
from dockyard.api.routers import containers, distribution, images, networks, system, volumes
from dockyard.api.routers import exec as exec_router
from dockyard.daemon.daemon import Daemon


def build_app(daemon: Daemon) -> web.Application:
    def register(app: web.Application) -> None:
        system.setup(app, daemon.system, daemon.events, daemon.make_event_filter)
        containers.setup(app, daemon.containers)
        exec_router.setup(app, daemon.execs)
        images.setup(app, daemon.images)
        distribution.setup(app, daemon.distribution)
        networks.setup(app, daemon.networks)
        volumes.setup(app, daemon.volumes)
        build_router.setup(app, daemon.build)

    return make_app(register)
