"""Hub features over the store: who may see a repository, and search."""

from __future__ import annotations

from dockyard.registry.auth import Policy
from dockyard.registry.store import Store


def visible(store: Store, policy: Policy, name: str, user: str = "") -> bool:
    return policy.open or policy.owns(user, name) or not policy.is_private(name, store.meta(name).private)


def search(store: Store, policy: Policy, query: str, user: str = "") -> list[dict]:
    """Repositories whose name or description contains ``query``, most starred first, in the
    shape ``docker search`` reads (name, description, star_count, is_official, is_automated)."""
    query = query.lower()
    found = []
    for name in store.catalog():
        meta = store.meta(name)
        if (query in name or query in meta.description.lower()) and visible(store, policy, name, user):
            found.append({"name": name, "description": meta.description, "star_count": len(meta.stars),
                          "pull_count": meta.pulls, "is_official": False, "is_automated": False})
    found.sort(key=lambda r: (-r["star_count"], r["name"]))
    return found
