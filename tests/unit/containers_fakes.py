"""Small fakes of the container service's Protocols (images, networks, shims, events)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dockyard import errdefs
from dockyard.daemon.interfaces import EndpointSettings, ImageInfo, SandboxInfo
from dockyard.mount import Mount
from dockyard.shim.client import ExitStatus, SpawnRequest

IMAGE_ID = "sha256:" + "ab" * 32


class FakeImages:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.layer = root / "layer0"
        (self.layer / "etc").mkdir(parents=True, exist_ok=True)
        (self.layer / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/home:/bin/false\n")
        (self.layer / "etc/group").write_text("root:x:0:\nwheel:x:10:root\nnogroup:x:65534:\n")
        self.info = ImageInfo(id=IMAGE_ID, config={"Cmd": ["sh"], "Env": ["PATH=/bin"]},
                              top_chain_id="sha256:chain", repo_tags=["busybox:latest"])
        self.rootfs: set[str] = set()

    def resolve(self, ref: str) -> ImageInfo:
        if ref in ("busybox", "busybox:latest", IMAGE_ID):
            return self.info
        raise errdefs.no_such_image(ref)

    def prepare_rootfs(self, key: str, image: ImageInfo) -> list[Mount]:
        if key in self.rootfs:
            raise errdefs.Conflict(f"snapshot {key} exists")
        self.rootfs.add(key)
        return [Mount(type="overlay", source="overlay",
                      options=(f"lowerdir={self.layer}", f"upperdir={self.root}/{key}/upper",
                               f"workdir={self.root}/{key}/work"))]

    def make_spare_rootfs(self) -> None:
        pass

    def remove_rootfs(self, key: str) -> None:
        self.rootfs.discard(key)

    def rootfs_upper(self, key: str) -> Path:
        return self.root / key / "upper"

    def layer_dirs(self, image: ImageInfo) -> list[Path]:
        return [self.layer]


class FakeNetworks:
    def __init__(self) -> None:
        self.sandboxes: dict[str, str] = {}
        self.fail: str | None = None
        self.prepared: list[tuple[str, str, str]] = []  # prepare_sandbox_files calls

    def check_endpoints(self, mode, configs) -> None:
        pass

    def container_renamed(self, container_id, name) -> None:
        pass

    def prepare_sandbox_files(self, container_id, mode, hostname, dns, dns_search, dns_options, extra_hosts,
                              data_dir) -> None:
        self.prepared.append((container_id, mode, hostname))

    async def create_sandbox(self, container_id, mode, hostname, domainname, dns, dns_search, dns_options,
                             extra_hosts, data_dir, peer_netns=None, container_name="", **network_options) -> SandboxInfo:
        if self.fail:
            raise errdefs.System(self.fail)
        self.sandboxes[container_id] = mode
        if mode == "host":
            return SandboxInfo(netns_path=None)
        (data_dir / "hosts").write_text("127.0.0.1 localhost\n")
        eps = [EndpointSettings("bridge", "n" * 64, "e" * 64, "172.30.0.2", 16, "172.30.0.1")] \
            if mode == "bridge" else []
        return SandboxInfo(netns_path=f"/run/fake/netns/{container_id}", endpoints=eps,
                           hosts_path=data_dir / "hosts")

    async def release_sandbox(self, container_id: str) -> None:
        self.sandboxes.pop(container_id, None)


class FakeStream:
    def __init__(self, handle: "FakeHandle") -> None:
        self.handle = handle
        self.queue: asyncio.Queue = asyncio.Queue()
        handle.streams.append(self)

    async def output(self):
        while True:
            item = await self.queue.get()
            if item is None:
                return
            yield item

    async def write_stdin(self, data: bytes) -> None:
        self.handle.stdin.append(data)
        if self.handle.echo:
            for s in self.handle.streams:
                s.queue.put_nowait((1, data))

    async def close_stdin(self) -> None:
        self.handle.stdin_closed = True
        if self.handle.exit_on_stdin_close:
            self.handle.exit(0)

    async def close(self) -> None:
        self.closed = True


class FakeHandle:
    def __init__(self, request: SpawnRequest, output: list[tuple[int, bytes]], exit_code: int | None,
                 echo: bool) -> None:
        self.container_id = request.container_id
        self.request = request
        self.shim_pid = 1
        self.pid = 4242
        self.streams: list[FakeStream] = []
        self.stdin: list[bytes] = []
        self.stdin_closed = False
        self.exit_on_stdin_close = echo
        self.echo = echo
        self.signals: list[int] = []
        self.paused = False
        self.started = False
        self.shut_down = False
        self.sizes: list[tuple[int, int]] = []
        self._output = output
        self._exit_code = exit_code
        self._done: asyncio.Future = asyncio.get_running_loop().create_future()

    def exit(self, code: int) -> None:
        for s in self.streams:
            s.queue.put_nowait(None)
        if not self._done.done():
            self._done.set_result(ExitStatus(exit_code=code, finished_at="2026-11-29T01:00:00.000000001Z"))

    async def start(self) -> None:
        self.started = True
        for item in self._output:
            for s in self.streams:
                s.queue.put_nowait(item)
        if self._exit_code is not None:
            asyncio.get_running_loop().call_soon(self.exit, self._exit_code)

    async def kill(self, signal: int, all_processes: bool = False) -> None:
        self.signals.append(signal)
        if signal in (9, 15) and not self.paused:
            asyncio.get_running_loop().call_soon(self.exit, 128 + signal)

    async def pause(self) -> None:
        self.paused = True

    async def resume(self) -> None:
        self.paused = False
        if 9 in self.signals:
            self.exit(137)

    async def resize(self, height: int, width: int) -> None:
        self.sizes.append((height, width))

    async def attach(self, stdin: bool, stdout: bool, stderr: bool) -> FakeStream:
        return FakeStream(self)

    async def wait(self) -> ExitStatus:
        return await asyncio.shield(self._done)

    async def shutdown(self) -> None:
        self.shut_down = True

    async def discard(self) -> None:
        await self.kill(9, all_processes=True)
        await self.shutdown()


class FakeShims:
    def __init__(self) -> None:
        self.handles: dict[str, FakeHandle] = {}
        self.requests: list[SpawnRequest] = []
        self.output: list[tuple[int, bytes]] = [(1, b"hello\n"), (2, b"oops\n")]
        self.exit_code: int | None = 0
        self.echo = False
        self.fail: str | None = None
        self.alive: set[str] = set()

    async def spawn(self, request: SpawnRequest) -> FakeHandle:
        self.requests.append(request)
        if self.fail:
            raise errdefs.System(self.fail)
        handle = FakeHandle(request, self.output, self.exit_code, self.echo)
        self.handles[request.container_id] = handle
        return handle

    async def run(self, request: SpawnRequest, attach=()) -> tuple[FakeHandle, list[FakeStream]]:
        handle = await self.spawn(request)
        streams = [await handle.attach(*which) for which in attach]
        await handle.start()
        return handle, streams

    async def connect(self, state_dir: Path, container_id: str):
        if container_id in self.alive:
            handle = FakeHandle(SpawnRequest(container_id, state_dir, (), state_dir, "dockyard", state_dir,
                                             False, False, False, None), [], None, False)
            self.handles[container_id] = handle
            return handle
        return None

    async def close(self) -> None:
        pass


class FakeEvents:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict]] = []

    def emit(self, type, action, actor_id, attributes=None, scope="local") -> None:
        self.events.append((action, actor_id, dict(attributes or {})))

    def actions(self) -> list[str]:
        return [a for a, _, _ in self.events]


class FakeVolumes:
    """-v host binds only, as the volume service would plan them."""

    def __init__(self) -> None:
        self.plans: dict[str, list[tuple[str, str, bool]]] = {}
        self.mounted: set[str] = set()

    def resolve_mounts(self, container_id, host_config, config_volumes, image_layer_dirs, volumes_from_lookup):
        from dockyard.apitypes.container import MountPoint
        plan = []
        for bind in host_config.binds or []:
            source, destination, *mode = bind.split(":")
            plan.append((source, destination, mode == ["ro"]))
        if plan:
            self.plans[container_id] = plan
        return [MountPoint(type="bind", source=s, destination=d, rw=not ro) for s, d, ro in plan]

    async def resolve_mounts_async(self, container_id, host_config, config_volumes, image_layer_dirs,
                                   volumes_from_lookup, default_read_only_non_recursive=False):
        return self.resolve_mounts(container_id, host_config, config_volumes, image_layer_dirs, volumes_from_lookup)

    async def mount(self, container_id, runtime=""):
        from dockyard.oci import runtime_spec as oci
        self.mounted.add(container_id)
        return [oci.Mount(destination=d, type="bind", source=s, options=["rbind", "rprivate", "ro" if ro else "rw"])
                for s, d, ro in self.plans.get(container_id, [])]

    async def unmount(self, container_id):
        self.mounted.discard(container_id)

    async def release(self, container_id, remove_anonymous):
        self.release_blocking(container_id, remove_anonymous)

    def release_blocking(self, container_id, remove_anonymous):
        self.plans.pop(container_id, None)
