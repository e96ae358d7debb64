"""``POST /commit`` and the container service's commit: a container's changes as a new image.

The new layer is a copy of the container's overlay upper dir (the layer Docker's tar of it
would unpack to), on top of its image's layers. The config is the parent image's, with the container config merged
in as Docker's ``daemon/commit.go`` does (user config and ``--change`` lines win; the
container's Env, ExposedPorts, Labels, Volumes, Cmd/Entrypoint fill the gaps) and one
history entry added. The parent image is recorded (ParentId / history IDs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from dockyard import errdefs
from dockyard.apitypes import image as api
from dockyard.daemon.images import changes as change_rules
from dockyard.daemon.images import references
from dockyard.daemon.images.register import register_with_layer
from dockyard.daemon.images.store import now_rfc3339, require

from dockyard.oci import image_spec as spec

if TYPE_CHECKING:
    from dockyard.daemon.images.service import ImageService


def _to_config(value: dict[str, Any] | None) -> spec.ContainerConfig:
    if not value:
        return spec.ContainerConfig()
    try:
        return msgspec.convert(value, spec.ContainerConfig, strict=False)
    except msgspec.ValidationError as e:
        raise errdefs.InvalidParameter(f"invalid container config: {e}") from None


def merge(user: spec.ContainerConfig, container: spec.ContainerConfig) -> spec.ContainerConfig:
    """Docker's ``merge(userConf, imageConf)``: fill what the user left unset."""
    if not user.user:
        user.user = container.user
    if not user.exposed_ports:
        user.exposed_ports = container.exposed_ports
    else:
        user.exposed_ports = {**(container.exposed_ports or {}), **user.exposed_ports}
    if not user.env:
        user.env = container.env
    else:
        keys = {e.partition("=")[0] for e in user.env}
        user.env = user.env + [e for e in container.env or [] if e.partition("=")[0] not in keys]
    user.labels = {**(container.labels or {}), **(user.labels or {})}
    if not user.entrypoint:
        if not user.cmd:
            user.cmd = container.cmd
            user.args_escaped = container.args_escaped
        if user.entrypoint is None:
            user.entrypoint = container.entrypoint
    if user.healthcheck is None:
        user.healthcheck = container.healthcheck
    if not user.working_dir:
        user.working_dir = container.working_dir
    if not user.volumes:
        user.volumes = container.volumes
    else:
        user.volumes = {**user.volumes, **(container.volumes or {})}
    if not user.stop_signal:
        user.stop_signal = container.stop_signal
    return user


def commit(service: ImageService, container_id: str, image_id: str, snapshot_key: str,
           container_config: dict[str, Any], repo: str, tag_name: str, author: str, comment: str,
           changes: list[str], overrides: dict[str, Any] | None) -> str:
    """Make the image; returns its ID. The caller holds the container paused if it asked to."""
    name = references.parse_repo_tag(repo, tag_name) if repo else None
    parent = require(service.store.get(image_id), image_id)
    base = parent.config
    container = _to_config(container_config)
    new_config = merge(change_rules.apply(_to_config(overrides), changes), container)
    created = now_rfc3339()
    history = list(base.history or [])
    history.append(spec.History(created=created, author=author or None, comment=comment or None,
                                created_by=" ".join(container.cmd or [])))

    def make_config(diff_id: str) -> bytes:
        return spec.encode(spec.ImageConfig(
            architecture=base.architecture, os=base.os or "linux", variant=base.variant, created=created,
            author=author or None, comment=comment or None, config=new_config, container=container_id,
            container_config=container, history=history,
            rootfs=spec.RootFS(diff_ids=[*base.rootfs.diff_ids, diff_id])))

    # the upper dir copied as the layer (data copied in the kernel, no tar written and unpacked)
    result = register_with_layer(service.lock, service.layers, service.store,
                                 lambda: service.snapshotter.commit(snapshot_key, keep=True),
                                 make_config, [name] if name else [], parent=parent.id)
    for ref in result.tagged:
        service.events.emit("image", "tag", result.id, {"name": ref.familiar()})
    return result.id


def commit_container(service: ImageService, container: str, repo: str, tag_name: str, author: str,
                     comment: str, changes: list[str], pause: bool,
                     overrides: dict[str, Any] | None) -> api.CommitResponse:
    if service.commit_source is None:
        raise errdefs.NotImplementedFeature("commit is not wired to the container service in this daemon")
    target = service.commit_source.commit_target(container)
    with service.commit_source.paused_for_commit(target.id, pause):
        image_id = commit(service, target.id, target.image_id, target.snapshot_key, target.config, repo,
                          tag_name, author, comment, changes, overrides)
    attributes = {"comment": comment, "imageID": image_id}
    if repo:
        attributes["imageRef"] = references.parse_repo_tag(repo, tag_name).familiar()
    service.events.emit("container", "commit", target.id, attributes)
    return api.CommitResponse(id=image_id)
