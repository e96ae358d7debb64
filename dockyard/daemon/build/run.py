"""RUN: one container per step, made through the container service's public operations.

The container gets the step's config (the image's, with the command, the build args in its
environment and no entrypoint), is attached before it starts so its output streams live,
started, waited for; its rootfs diff becomes the step's layer (the caller commits while the
container still exists), and it is always removed afterwards, also when the build fails or
the client goes away.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Protocol

from dockyard.apitypes.container import CreateRequest, CreateResponse, HostConfig, Ulimit, WaitResponse


class RunContainers(Protocol):
    """The slice of the container service RUN needs."""

    def create(self, request: CreateRequest, name: str | None = None) -> CreateResponse: ...

    async def attach(self, ref: str, *, stdin: bool, stdout: bool, stderr: bool, logs: bool = False,
                     stream: bool = True, detach_keys: str | None = None) -> Any: ...

    async def start(self, ref: str) -> None: ...

    def wait(self, ref: str, condition: str = "not-running") -> asyncio.Future: ...

    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None: ...

    def list(self, all: bool = False, limit: int = -1, size: bool = False,
             filters: dict[str, list[str]] | None = None) -> list[Any]: ...


# Marks RUN containers, so those of a build the daemon died in are found and removed at start.
BUILD_LABEL = "com.dockyard.build.step"


@dataclass
class RunResources:
    """The ``docker build`` flags that shape RUN containers."""
    network_mode: str = ""
    extra_hosts: list[str] = field(default_factory=list)
    shm_size: int = 0
    ulimits: list[Ulimit] = field(default_factory=list)
    cpu_shares: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    memory: int = 0
    memory_swap: int = 0

    def host_config(self) -> HostConfig:
        return HostConfig(network_mode=self.network_mode, extra_hosts=self.extra_hosts or None,
                          shm_size=self.shm_size, ulimits=self.ulimits or None, cpu_shares=self.cpu_shares,
                          cpu_period=self.cpu_period, cpu_quota=self.cpu_quota, cpuset_cpus=self.cpuset_cpus,
                          cpuset_mems=self.cpuset_mems, memory=self.memory, memory_swap=self.memory_swap)


@dataclass
class RunContainer:
    id: str
    session: Any


async def create(containers: RunContainers, image_id: str, cmd: list[str], env: list[str], user: str,
                 working_dir: str, resources: RunResources, transient: bool = True) -> RunContainer:
    """``transient``: removed after its step (``--rm``, the default), so labelled for the clean-up
    at start; a container ``--rm=false`` keeps is the user's, as on dockerd."""
    request = CreateRequest(image=image_id, cmd=cmd, entrypoint=[], env=env, user=user,
                            working_dir=working_dir, attach_stdout=True, attach_stderr=True,
                            labels={BUILD_LABEL: "true"} if transient else None,
                            host_config=resources.host_config())
    created = containers.create(request)
    try:
        session = await containers.attach(created.id, stdin=False, stdout=True, stderr=True)
    except BaseException:
        await asyncio.shield(containers.remove(created.id, force=True))
        raise
    return RunContainer(id=created.id, session=session)


async def run(containers: RunContainers, container: RunContainer) -> AsyncIterator[bytes | int]:
    """Start the container; yields its output chunks, then the exit code (an int) last."""
    waiter = containers.wait(container.id, "next-exit")
    try:
        await containers.start(container.id)
        async for _stream, data in container.session.output():
            yield data
        result: WaitResponse = await waiter
    finally:
        if not waiter.done():
            waiter.cancel()
    yield result.status_code


async def remove_leftovers(containers: RunContainers) -> int:
    leftovers = containers.list(all=True, filters={"label": [BUILD_LABEL]})
    for container in leftovers:
        await containers.remove(container.id, force=True)
    return len(leftovers)


async def remove(containers: RunContainers, container_id: str) -> None:
    """Remove even while the caller is being cancelled: no build leaves a container behind."""
    await asyncio.shield(containers.remove(container_id, force=True))
