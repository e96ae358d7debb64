"""The typed application keys the hub's handlers share (aiohttp AppKey)."""

from __future__ import annotations

from collections import Counter

from aiohttp import web

from dockyard.registry.auth import Policy, RefreshTokens, TokenIssuer
from dockyard.registry.config import HubConfig
from dockyard.registry.proxy import Upstream
from dockyard.registry.store import Store

STORE = web.AppKey("store", Store)
CONFIG = web.AppKey("config", HubConfig)
POLICY = web.AppKey("policy", Policy)
ISSUER = web.AppKey("issuer", TokenIssuer)
REFRESH = web.AppKey("refresh", RefreshTokens)
METRICS = web.AppKey("metrics", Counter)
UPSTREAM = web.AppKey("upstream", Upstream | None)
