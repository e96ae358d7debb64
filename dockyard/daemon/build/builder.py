"""The classic builder: a Dockerfile's stages run step by step, one image per step.

For each step the builder first asks the cache (parent image + step key); a hit reuses that
image and touches no container. A miss runs the step: metadata instructions make an image
with the parent's layers and a new config (an ``empty_layer`` history entry); RUN runs a
container and commits its diff; COPY/ADD write into a scratch snapshot of the parent and
commit that. Stages the target does not need are skipped; the ones it needs run as soon as
the stages they need are built, so independent stages run at the same time (``_stages``:
their output is held per stage and shown in Dockerfile order). The stream is the classic
builder's (``Step 1/5 : ...``, `` ---> Using cache``, `` ---> <id>``, ``Successfully built``).
``--squash`` then merges the target stage's layers into one (``squash``).
"""

from __future__ import annotations

import asyncio
import codecs
import copy as copymod
import dataclasses
import hashlib
import os
import posixpath
import shutil
import stat
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator

import msgspec

from dockyard import errdefs
from dockyard.daemon.build import cache as cachemod
from dockyard.daemon.build import chown as chownmod
from dockyard.daemon.build import copy as copyops
from dockyard.daemon.build import dockerfile as parser
from dockyard.apitypes import dockerignore
from dockyard.daemon.build import instructions, platforms, run, shellwords, stream
from dockyard.daemon.build import squash as squashmod
from dockyard.daemon.build.context import Context
from dockyard.daemon.build.images import BaseImage, BuildImages
from dockyard.daemon.build.options import BasePuller, BuildFailed, BuildOptions
from dockyard.apitypes.distribution import AuthConfig, JSONMessage
from dockyard.daemon.images import references
from dockyard.daemon.images.store import now_rfc3339
from dockyard.oci import image_spec as spec

PROXY_ARGS = {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
              "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"}
_COPY_FLAGS = {"from", "chown", "chmod", "link", "exclude"}
_ADD_FLAGS = {"chown", "chmod", "link", "checksum", "keep-git-dir"}


@dataclass
class Stage:
    index: int
    name: str
    base: str  # the FROM argument as written
    from_inst: parser.Instruction
    instructions: list[parser.Instruction]


@dataclass
class StageState:
    image: BaseImage
    conf: instructions.StageConfig
    args: dict[str, str | None] = field(default_factory=dict)  # ARGs declared in the stage


def split_stages(doc: parser.Dockerfile) -> tuple[list[parser.Instruction], list[Stage]]:
    meta: list[parser.Instruction] = []
    stages: list[Stage] = []
    for inst in doc.instructions:
        if inst.cmd == "from":
            words = inst.rest.split()
            name = ""
            if len(words) == 3 and words[1].lower() == "as":
                name = words[2].lower()
            elif len(words) != 1:
                raise inst.error("FROM requires either one or three arguments")
            stages.append(Stage(index=len(stages), name=name, base=words[0], from_inst=inst, instructions=[]))
        elif not stages:
            if inst.cmd != "arg":
                raise errdefs.InvalidParameter("Please provide a source image with `from` prior to commit")
            meta.append(inst)
        else:
            stages[-1].instructions.append(inst)
    return meta, stages


class Builder:
    def __init__(self, images: BuildImages, cache: cachemod.BuildCache, containers: run.RunContainers,
                 scratch: Path, puller: BasePuller | None = None) -> None:
        self._images = images
        self._cache = cache
        self._containers = containers
        self._scratch = scratch
        self._puller = puller

    async def build(self, context: Context, options: BuildOptions) -> AsyncIterator[stream.Message]:
        job = _Job(self, context, options)
        try:
            async for message in job.run():
                yield message
        except Exception:
            # -q: the output held back is the failure's explanation (moby's notVerboseBuffer)
            if job.held:
                yield stream.text("".join(job.held))
            raise


class _Job:
    def __init__(self, builder: Builder, context: Context, options: BuildOptions) -> None:
        self.b = builder
        self.context = context
        self.options = options
        self.used_args: set[str] = set()
        self.stage_images: dict[int, BaseImage] = {}
        self.stage_bases: dict[int, BaseImage] = {}  # each stage's FROM image (--squash merges above it)
        self.total = 0
        self.escape = "\\"
        self.meta_args: dict[str, str | None] = {}
        self.held: list[str] = []  # with -q: the output, shown only if the build fails
        self.target_platform = platforms.parse(options.platform) if options.platform else platforms.host()
        self.pulls: dict[str, asyncio.Lock] = {}  # one pull per base name, however many stages need it
        self.pulled: set[str] = set()
        self.step_locks: dict[tuple[str, str], asyncio.Lock] = {}

    @staticmethod
    def say(line: str) -> stream.Message:
        return stream.text(line)

    def shown(self, message: stream.Message) -> stream.Message | None:
        """The message as the client sees it: with -q, text is held back (shown on failure)."""
        if self.options.quiet and "stream" in message:
            self.held.append(message["stream"])
            return None
        return message

    # ---- the plan -------------------------------------------------------------------
    async def run(self) -> AsyncIterator[stream.Message]:
        for tag in self.options.tags:  # a bad -t is refused before any step runs, as dockerd does
            if references.parse_tagged(tag).digest:
                raise errdefs.InvalidParameter(f"invalid reference format: {tag!r} (a build tag cannot be a digest)")
        doc = parser.parse(self.context.dockerfile)
        self.escape = doc.escape
        meta, stages = split_stages(doc)
        if not stages:
            raise errdefs.InvalidParameter("no build stage in current context")
        meta_args = self.meta_args = self._meta_args(meta)
        target = len(stages) - 1
        if self.options.target:
            names = [s.name for s in stages]
            if self.options.target.lower() not in names:
                raise errdefs.InvalidParameter(f"failed to reach build target {self.options.target} in Dockerfile")
            target = names.index(self.options.target.lower())
        if self.options.labels:  # --label: a LABEL step at the end of the target, as Docker adds it
            text = "LABEL " + " ".join(f'"{_quoted(k)}"="{_quoted(v)}"' for k, v in sorted(self.options.labels.items()))
            stages[target].instructions.append(parser.Instruction(
                cmd="label", original=text, line=0, rest=text[len("LABEL "):]))
        deps = self._needed(stages, target, meta_args)
        needed = sorted(deps)
        self.total = len(meta) + sum(1 + len(stages[i].instructions) for i in needed)
        first_step: dict[int, int] = {}
        step = len(meta)
        for index in needed:  # numbered as the sequential classic builder numbers them
            first_step[index] = step + 1
            step += 1 + len(stages[index].instructions)
        for number, inst in enumerate(meta, 1):
            if (m := self.shown(self.say(f"Step {number}/{self.total} : {inst.original}\n"))) is not None:
                yield m
        async for message in self._stages(stages, deps, first_step):
            if (m := self.shown(message)) is not None:
                yield m
        final = self.stage_images[target]
        if not final.id:
            raise errdefs.InvalidParameter("No image was generated. Is your Dockerfile empty?")
        unused = sorted(k for k in self.options.build_args
                        if k not in self.used_args and k not in PROXY_ARGS)
        if unused and not self.options.quiet:
            yield stream.text(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
        if self.options.squash:
            yield stream.aux_id(final.id)  # moby: the builder's image first, then the squashed one
            final = await asyncio.to_thread(self._squash, final, self.stage_bases[target])
        yield stream.aux_id(final.id)
        if self.options.quiet:
            yield stream.text(final.id + "\n")
        else:
            yield stream.text(f"Successfully built {stream.short_id(final.id)}\n")
        for tag in self.options.tags:
            name = self.b._images.tag(final.id, tag)
            if not self.options.quiet:
                yield stream.text(f"Successfully tagged {name}\n")

    def _meta_args(self, meta: list[parser.Instruction]) -> dict[str, str | None]:
        # Docker's automatic platform ARGs: global scope (FROM lines), and inside a stage only
        # where redeclared without a value (``ARG TARGETARCH``)
        values: dict[str, str | None] = {
            **platforms.args("BUILD", platforms.host()), **platforms.args("TARGET", self.target_platform)}
        for inst in meta:
            for key, default in self._arg_pairs(inst, values):
                if key in self.options.build_args and self.options.build_args[key] is not None:
                    values[key] = self.options.build_args[key]
                    self.used_args.add(key)
                elif default is not None or key not in values:  # `ARG TARGETARCH` keeps its value
                    values[key] = default
        return values

    def _arg_pairs(self, inst: parser.Instruction, env: dict[str, str | None]) -> list[tuple[str, str | None]]:
        out: list[tuple[str, str | None]] = []
        known = {k: v for k, v in env.items() if v is not None}
        for word in inst.rest.split():
            key, sep, default = word.partition("=")
            if not key:
                raise inst.error("ARG names can not be blank")
            out.append((key, shellwords.expand(default, known, self.escape) if sep else None))
        return out

    def _needed(self, stages: list[Stage], target: int, meta_args: dict[str, str | None]) -> dict[int, set[int]]:
        """The stages the target needs, each with the stages it needs itself (its FROM stage and
        its ``COPY --from`` stages): stages that do not need each other run at the same time.
        (``RUN --mount=from=`` needs BuildKit: the classic builder refuses it, so no edge.)"""
        names = {s.name: s.index for s in stages if s.name}
        env = {k: v for k, v in meta_args.items() if v is not None}
        deps: dict[int, set[int]] = {}

        def visit(index: int) -> None:
            if index in deps:
                return
            mine = deps[index] = set()
            stage = stages[index]
            base = shellwords.expand(stage.base, env, self.escape).lower()
            if base in names and names[base] < index:
                mine.add(names[base])
            for inst in stage.instructions:
                source = inst.flag("from") if inst.cmd == "copy" else ""
                if source:
                    ref = self._stage_ref(source, names, index)
                    if ref is not None:
                        mine.add(ref)
            for dep in mine:
                visit(dep)

        visit(target)
        return deps

    @staticmethod
    def _stage_ref(source: str, names: dict[str, int], before: int) -> int | None:
        if source.lower() in names and names[source.lower()] < before:
            return names[source.lower()]
        if source.isdigit():
            if int(source) >= before:
                raise errdefs.InvalidParameter(f"invalid from flag value {source}: refers to current or future build stage")
            return int(source)
        return None

    # ---- the stages, in parallel ----------------------------------------------------
    async def _stages(self, stages: list[Stage], deps: dict[int, set[int]],
                      first_step: dict[int, int]) -> AsyncIterator[stream.Message]:
        """Every needed stage as a task that starts once the stages it needs are built, so
        independent stages run at the same time. The output stays the sequential classic
        builder's: stages are shown whole, in Dockerfile order; the first unfinished stage
        streams live, later ones are held until every earlier stage is shown. A failing stage
        cancels the others (their RUN containers and scratch snapshots go), its held output is
        shown, then its error; a client that leaves cancels them all the same way."""
        order = sorted(deps)
        events: asyncio.Queue[tuple[int, object]] = asyncio.Queue()
        tasks: dict[int, asyncio.Task] = {}

        async def work(index: int) -> None:
            needs = [tasks[d] for d in deps[index]]
            if needs:
                await asyncio.wait(needs)
                if any(t.cancelled() or t.exception() is not None for t in needs):
                    return  # that stage's failure is reported; this one never starts
            try:
                async for message in self._stage(stages[index], stages, first_step[index]):
                    events.put_nowait((index, message))
            except Exception as e:  # reported through the queue, raised by the reader
                events.put_nowait((index, e))
                raise
            events.put_nowait((index, _END))

        for index in order:
            tasks[index] = asyncio.ensure_future(work(index))
            tasks[index].add_done_callback(_retrieved)
        held: dict[int, list[stream.Message]] = {i: [] for i in order}
        finished: set[int] = set()
        shown = 0
        try:
            while shown < len(order):
                index, item = await events.get()
                if isinstance(item, BaseException):
                    if index != order[shown]:
                        for message in held[index]:
                            yield message
                    raise item
                if item is _END:
                    finished.add(index)
                else:
                    held[index].append(item)  # type: ignore[arg-type]
                while shown < len(order):
                    current = order[shown]
                    messages, held[current] = held[current], []
                    for message in messages:
                        yield message
                    if current not in finished:
                        break
                    shown += 1
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)

    # ---- a stage --------------------------------------------------------------------
    async def _stage(self, stage: Stage, stages: list[Stage], first_step: int) -> AsyncIterator[stream.Message]:
        yield self.say(f"Step {first_step}/{self.total} : {stage.from_inst.original}\n")
        env = {k: v for k, v in self.meta_args.items() if v is not None}
        base_name = shellwords.expand(stage.base, env, self.escape)
        names = {s.name: s.index for s in stages if s.name}
        platform = self.target_platform
        if stage.from_inst.flag("platform"):
            text = shellwords.expand(stage.from_inst.flag("platform"), env, self.escape)
            try:
                platform = platforms.parse(text)
            except errdefs.InvalidParameter as e:
                raise errdefs.InvalidParameter(f"failed to parse platform {text}: {e.message}") from None
        if base_name.lower() in names and names[base_name.lower()] < stage.index:
            image = self.stage_images[names[base_name.lower()]]
        elif base_name.lower() == "scratch":
            image = platforms.scratch(platform)
        else:
            async for m in self._base(base_name, platform):
                yield m
            image = await asyncio.to_thread(self._base_image, base_name, platform)
        self.stage_bases[stage.index] = image
        if image.id:
            yield self.say(f" ---> {stream.short_id(image.id)}\n")
        config = copymod.deepcopy(image.config.config) if image.config.config else spec.ContainerConfig()
        if not image.id and not config.env:
            config.env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        triggers = list(config.on_build or [])
        config.on_build = None
        state = StageState(image=image, conf=instructions.StageConfig(config=config, escape=self.escape))
        if triggers:
            yield self.say(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n")
            for text in triggers:
                trigger = parser.parse(f"FROM scratch\n{text}").instructions[1]
                async for message in self._step(trigger, state, stages, stage.index):
                    yield message
        for number, inst in enumerate(stage.instructions, first_step + 1):
            yield self.say(f"Step {number}/{self.total} : {inst.original}\n")
            async for message in self._step(inst, state, stages, stage.index):
                yield message
        self.stage_images[stage.index] = state.image

    async def _base(self, name: str, platform: platforms.Platform) -> AsyncIterator[stream.Message]:
        """Pull the FROM image when it is missing, is of another platform, or with --pull
        (moby's GetImageAndReleasableLayer); stages sharing a base pull it once."""
        lock = self.pulls.setdefault(name, asyncio.Lock())
        async with lock:
            if not self.options.pull and await asyncio.to_thread(self._have, name, platform):
                return
            if self.options.pull and name in self.pulled:
                return
            try:
                async for m in self._pull(name, platform):
                    yield m
            except errdefs.DockyardError:
                # present, but of another platform: say that rather than why the registry failed
                if self.options.pull or not await asyncio.to_thread(self._have, name, None):
                    raise
            self.pulled.add(name)

    def _have(self, name: str, platform: platforms.Platform | None) -> bool:
        try:
            image = self.b._images.resolve(name)
        except errdefs.NotFound:
            return False
        return platform is None or platforms.matches(image.config, platform)

    async def _pull(self, name: str, platform: platforms.Platform) -> AsyncIterator[stream.Message]:
        """The registry's progress messages, live, as dockerd's classic builder shows them."""
        if self.b._puller is None:
            return
        ref = references.parse_tagged(name)
        auth = next((config for address, config in self.options.auth_configs.items()
                     if _registry_of(address) == ref.domain), AuthConfig())
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[JSONMessage | None] = asyncio.Queue()

        def emit(message: JSONMessage) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, message)

        def work() -> None:
            try:
                self.b._puller.pull(ref.familiar_name, ref.digest or ref.tag or references.DEFAULT_TAG,  # type: ignore[union-attr]
                                    str(platform), auth, emit)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        task = asyncio.ensure_future(asyncio.to_thread(work))
        while (message := await queue.get()) is not None:
            if not self.options.quiet:
                yield msgspec.to_builtins(message)
        await task

    def _base_image(self, name: str, platform: platforms.Platform) -> BaseImage:
        try:
            image = self.b._images.resolve(name)
        except errdefs.NotFound:
            raise errdefs.NotFound(f"pull access denied for {name.split(':')[0]}, repository does not exist or "
                                   "may require 'docker login'") from None
        if not platforms.matches(image.config, platform):
            raise errdefs.NotFound(f"image with reference {name} was found but does not match the specified "
                                   f"platform: wanted {platform}, actual: {platforms.of_config(image.config)}")
        return image

    # ---- --squash -------------------------------------------------------------------
    def _squash(self, final: BaseImage, base: BaseImage) -> BaseImage:
        """moby's SquashImage: the final stage's layers since its FROM merged into one on top
        of the base's layers; every history entry kept (those of the merged steps now
        ``empty_layer``) plus one for the merged layer."""
        images = self.b._images
        snap = images.scratch_key()
        images.prepare(snap, base)
        try:
            upper = images.upper_dir(snap)
            squashmod.merge_layers(images.layers_above(final, base), upper)
            if not base.id:
                squashmod.drop_foreign_whiteouts(upper, lambda rel: False)
            elif squashmod.has_markers(upper):
                probe = images.scratch_key()
                mounts = images.prepare(probe, base)
                try:
                    with copyops.mounted(mounts, self.b._scratch / probe) as root:
                        squashmod.drop_foreign_whiteouts(upper, lambda rel: _exists_below(root, rel))
                finally:
                    images.remove(probe)

            def config(diff_id: str) -> spec.ImageConfig:
                created = now_rfc3339()
                kept = len(base.config.history or [])
                history = [h if i < kept else msgspec.structs.replace(h, empty_layer=True)
                           for i, h in enumerate(final.config.history or [])]
                comment = f"merge {final.id} to {base.id}" if base.id else f"create new from {final.id}"
                history.append(spec.History(created=created, comment=comment))
                return msgspec.structs.replace(
                    final.config, created=created, history=history,
                    rootfs=spec.RootFS(diff_ids=[*base.config.rootfs.diff_ids, diff_id]))

            return images.squashed(base, snap, config)
        finally:
            images.remove(snap)

    def _expansion_env(self, state: StageState) -> dict[str, str]:
        env = instructions.env_map(state.conf.config)
        for key, value in state.args.items():
            if value is not None and key not in env:
                env[key] = value
        return env

    # ---- a step ---------------------------------------------------------------------
    async def _step(self, inst: parser.Instruction, state: StageState, stages: list[Stage],
                    stage_index: int) -> AsyncIterator[stream.Message | None]:
        # Parallel stages running the same step on the same image (two stages FROM one base
        # with the same ARG or RUN) take turns: the second finds the first's result in the
        # cache, as the sequential builder would, instead of making a twin image that replaces
        # the first's cache row and orphans the steps built on it.
        lock = self.step_locks.setdefault((state.image.id, inst.original), asyncio.Lock())
        async with lock:
            if inst.cmd == "arg":
                self._arg(inst, state)
                async for m in self._metadata(state, "ARG " + inst.rest):
                    yield m
            elif inst.cmd == "run":
                async for m in self._run(inst, state):
                    yield m
            elif inst.cmd in ("copy", "add"):
                async for m in self._copy(inst, state, stages, stage_index):
                    yield m
            elif inst.cmd == "from":
                raise inst.error("FROM is not allowed here")
            else:
                comment = instructions.apply(inst, state.conf, self._expansion_env(state))
                workdir = (state.conf.config.working_dir or "/") if inst.cmd == "workdir" else ""
                async for m in self._metadata(state, comment, workdir):
                    yield m

    def _arg(self, inst: parser.Instruction, state: StageState) -> None:
        for key, default in self._arg_pairs(inst, {**self.meta_args, **state.args}):
            value = default
            if default is None and self.meta_args.get(key) is not None:
                value = self.meta_args[key]
            if key in self.options.build_args:
                self.used_args.add(key)
                given = self.options.build_args[key]
                if given is not None:
                    value = given
            state.args[key] = value

    def _created_by(self, state: StageState, comment: str) -> list[str]:
        return [*state.conf.shell(), "#(nop) ", comment]

    def _probe(self, state: StageState, key: str, created_by: str) -> BaseImage | None:
        if self.options.no_cache or not state.image.id:
            return None
        image_id = self.b._cache.lookup(state.image.id, key)
        hit = self.b._images.get(image_id) if image_id else None
        if hit is None and self.options.cache_from:
            hit = self._from_cache_sources(state, key, created_by)
        return hit

    def _from_cache_sources(self, state: StageState, key: str, created_by: str) -> BaseImage | None:
        """``--cache-from``: an image whose history continues the parent's with this very step
        (same earlier history and layers, same ``created_by``) gives the step's result."""
        parent = state.image.config
        history = [(h.created_by, bool(h.empty_layer)) for h in parent.history or []]
        diff_ids = list(parent.rootfs.diff_ids)
        for ref in self.options.cache_from:
            try:
                source = self.b._images.resolve(ref)
            except errdefs.DockyardError:
                continue  # moby ignores cache sources it cannot find
            source_history = [(h.created_by, bool(h.empty_layer)) for h in source.config.history or []]
            source_diffs = list(source.config.rootfs.diff_ids)
            if len(source_history) <= len(history) or source_history[:len(history)] != history \
                    or source_diffs[:len(diff_ids)] != diff_ids:
                continue
            entry_created_by, empty = source_history[len(history)]
            if entry_created_by != created_by or (not empty and len(source_diffs) <= len(diff_ids)):
                continue
            cmd = created_by.split(" ")
            if empty:
                image = self.b._images.with_config(
                    state.image, self._new_config(state, created_by, cmd, empty=True, diff_id=None))
            else:
                image = self.b._images.with_config(
                    state.image, self._new_config(state, created_by, cmd, empty=False,
                                                  diff_id=source_diffs[len(diff_ids)]))
            self.b._cache.store(state.image.id, key, image.id, now_rfc3339())
            return image
        return None

    def _new_config(self, state: StageState, created_by: str, container_cmd: list[str], empty: bool,
                    diff_id: str | None) -> spec.ImageConfig:
        base = state.image.config
        history = list(base.history or [])
        created = now_rfc3339()
        history.append(spec.History(created=created, created_by=created_by, empty_layer=True if empty else None))
        container_config = copymod.deepcopy(state.conf.config)
        container_config.cmd = container_cmd
        diff_ids = list(base.rootfs.diff_ids) + ([diff_id] if diff_id else [])
        return spec.ImageConfig(
            architecture=base.architecture or "amd64", os=base.os or "linux", variant=base.variant, created=created,
            author=state.conf.author if state.conf.author is not None else base.author,
            config=copymod.deepcopy(state.conf.config), container_config=container_config,
            history=history, rootfs=spec.RootFS(diff_ids=diff_ids), parent=state.image.id or None)

    def _done(self, state: StageState, key: str, image: BaseImage) -> None:
        if state.image.id:
            self.b._cache.store(state.image.id, key, image.id, now_rfc3339())
        state.image = image
        state.conf.config = copymod.deepcopy(image.config.config) if image.config.config else spec.ContainerConfig()

    async def _metadata(self, state: StageState, comment: str,
                        workdir: str = "") -> AsyncIterator[stream.Message | None]:
        cmd = self._created_by(state, comment)
        created_by = " ".join(cmd)
        # build args matter only where expanded, and an expanded value is in the comment already
        key = cachemod.step_key(created_by, state.conf.config)
        hit = self._probe(state, key, created_by)
        if hit is not None:
            state.image = hit
            yield self.say(" ---> Using cache\n")
        else:
            if workdir:
                image = await asyncio.to_thread(self._workdir, state, workdir, created_by, cmd)
            else:
                config = self._new_config(state, created_by, cmd, empty=True, diff_id=None)
                image = await asyncio.to_thread(self.b._images.with_config, state.image, config)
            self._done(state, key, image)
        yield self.say(f" ---> {stream.short_id(state.image.id)}\n")

    def _workdir(self, state: StageState, workdir: str, created_by: str, cmd: list[str]) -> BaseImage:
        """WORKDIR makes its directory when the image lacks it (a layer then, as on dockerd)."""
        snap = self.b._images.scratch_key()
        mounts = self.b._images.prepare(snap, state.image)
        try:
            with copyops.mounted(mounts, self.b._scratch / snap) as rootfs:
                created = copyops.make_dir(rootfs, workdir)
            if not created:
                config = self._new_config(state, created_by, cmd, empty=True, diff_id=None)
                return self.b._images.with_config(state.image, config)
            return self.b._images.with_snapshot(
                state.image, snap,
                lambda diff_id: self._new_config(state, created_by, cmd, empty=False, diff_id=diff_id))
        finally:
            self.b._images.remove(snap)

    # ---- RUN ------------------------------------------------------------------------
    async def _run(self, inst: parser.Instruction, state: StageState) -> AsyncIterator[stream.Message | None]:
        if inst.flags:
            flag = next(iter(inst.flags))
            if flag in ("mount", "network", "security"):
                raise inst.error(f"the --{flag} option requires BuildKit. Refer to "
                                 "https://docs.docker.com/go/buildkit/ to learn how to build images with "
                                 "BuildKit enabled")
            raise inst.error(f"Unknown flag: {flag}")
        if not state.image.id:
            raise BuildFailed("no image to run a command in: a RUN needs a base image other than scratch "
                              "with a shell")
        if inst.heredocs and parser.is_heredoc_only(inst.rest):
            command = [*state.conf.shell(), inst.heredocs[0].content]  # the heredoc is the script
        elif inst.heredocs:
            # "RUN python3 <<EOF": the shell gets the heredocs as written and feeds them itself
            command = [*state.conf.shell(), inst.rest + "\n" + "".join(
                f"{h.content}{h.name}\n" for h in inst.heredocs)]
        elif inst.json is not None:
            command = list(inst.json)
        else:
            command = [*state.conf.shell(), inst.rest]
        # build args the command sees: declared ones (recorded in history) and the proxy ones (not)
        env_keys = {e.partition("=")[0] for e in state.conf.config.env or []}
        declared = sorted((k, v) for k, v in state.args.items() if v is not None and k not in env_keys)
        proxies = [(k, v) for k, v in self.options.build_args.items()
                   if k in PROXY_ARGS and v is not None and k not in state.args]
        saved = command
        if declared:
            saved = [f"|{len(declared)}", *(f"{k}={v}" for k, v in declared), *command]
        created_by = " ".join(saved)
        key = cachemod.step_key(created_by, state.conf.config)
        hit = self._probe(state, key, created_by)
        if hit is not None:
            state.image = hit
            yield self.say(" ---> Using cache\n")
            yield self.say(f" ---> {stream.short_id(hit.id)}\n")
            return
        conf = state.conf.config
        env = list(conf.env or []) + [f"{k}={v}" for k, v in declared] + [f"{k}={v}" for k, v in proxies]
        container = await run.create(self.b._containers, state.image.id, command, env, conf.user or "",
                                     conf.working_dir or "", self.options.resources,
                                     transient=self.options.remove or self.options.force_remove)
        keep = False
        try:
            yield self.say(f" ---> Running in {container.id[:12]}\n")
            code = 0
            decoder = codecs.getincrementaldecoder("utf-8")("replace")  # a chunk may split a character
            async for item in run.run(self.b._containers, container):
                if isinstance(item, int):
                    code = item
                elif text := decoder.decode(item):
                    yield self.say(text)
            if code != 0:
                raise BuildFailed(f"The command '{' '.join(command)}' returned a non-zero code: {code}", code)

            def commit() -> BaseImage:
                return self.b._images.with_snapshot(
                    state.image, container.id,
                    lambda diff_id: self._new_config(state, created_by, saved, empty=False, diff_id=diff_id),
                    keep=True)

            image = await asyncio.to_thread(commit)
            keep = not self.options.remove and not self.options.force_remove
        finally:
            if not keep:
                await run.remove(self.b._containers, container.id)
        if not keep:
            yield self.say(f"Removing intermediate container {container.id[:12]}\n")
        self._done(state, key, image)
        yield self.say(f" ---> {stream.short_id(image.id)}\n")

    # ---- COPY / ADD -----------------------------------------------------------------
    async def _copy(self, inst: parser.Instruction, state: StageState, stages: list[Stage],
                    stage_index: int) -> AsyncIterator[stream.Message | None]:
        name = inst.cmd.upper()
        allowed = _COPY_FLAGS if inst.cmd == "copy" else _ADD_FLAGS
        for flag in inst.flags:
            if flag not in allowed:
                raise inst.error(f"Unknown flag: {flag}")
        env = self._expansion_env(state)
        if inst.json is not None:
            words = [shellwords.expand(w, env, self.escape) for w in inst.json]
        else:
            words = shellwords.words(inst.rest, env, self.escape)
        if len(words) < 2:
            raise inst.error(f"{name} requires at least two arguments, but only one was provided. "
                             "Destination could not be determined.")
        sources, requested = words[:-1], words[-1]
        # moby's normalizeDest: relative to WORKDIR; "." and a trailing "/" mean a directory
        as_dir = requested.endswith("/") or requested == "." or requested.endswith("/.")
        dest = posixpath.normpath(posixpath.join(state.conf.config.working_dir or "/", requested))
        if as_dir and dest != "/":
            dest += "/"
        chmod = None
        if inst.flag("chmod"):
            try:
                chmod = int(inst.flag("chmod"), 8)
            except ValueError:
                raise inst.error(f"invalid chmod parameter: {inst.flag('chmod')}") from None
        chown = inst.flag("chown")
        excludes = inst.flags.get("exclude", [])
        from_ref = inst.flag("from")
        scratch = Path(tempfile.mkdtemp(prefix="step-", dir=self.b._scratch))
        try:
            if from_ref:
                async for m in self._copy_from(inst, state, stages, stage_index, from_ref, sources, dest, chown,
                                               chmod, excludes, scratch):
                    yield m
                return
            found = await asyncio.to_thread(self._gather, inst, state, sources, scratch)
            exclude = dockerignore.parse("\n".join(excludes)) if excludes else []
            digest = await asyncio.to_thread(copyops.checksum, found, exclude)
            kind = "dir" if len(found) == 1 and found[0].is_dir else ("multi" if len(found) > 1 else "file")
            comment = f"{name} {kind}:{digest} in {dest} "
            extra = f"chown={chown} chmod={inst.flag('chmod')}"
            async for m in self._write(state, comment, extra, found, dest, chown, chmod, exclude, scratch):
                yield m
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _gather(self, inst: parser.Instruction, state: StageState, sources: list[str],
                scratch: Path) -> list[copyops.Source]:
        """Each source as a file to copy: heredocs and URLs (ADD) become files in the step's
        scratch directory, the rest is found in the context (ADD unpacks local archives)."""
        name = inst.cmd.upper()
        heredocs = {h.name: h for h in inst.heredocs}
        found: list[copyops.Source] = []
        for src in sources:
            marker = src.lstrip("<-").strip("'\"") if src.startswith("<<") else ""
            if marker in heredocs:
                path = scratch / "heredocs" / marker
                path.parent.mkdir(exist_ok=True)
                doc = heredocs[marker]
                env = self._expansion_env(state)
                path.write_text(shellwords.substitute(doc.content, env, self.escape) if doc.expand else doc.content)
                os.chmod(path, 0o644)
                found.append(copyops.Source(path=str(path), name=marker, is_dir=False))
            elif inst.cmd == "add" and urllib.parse.urlparse(src).scheme in ("http", "https"):
                path = self._download(src, scratch, inst.flag("checksum"))
                found.append(copyops.Source(path=str(path), name=path.name, is_dir=False))
            else:
                if inst.flag("checksum"):
                    raise inst.error("checksum can't be specified for non-HTTP(S) sources")
                for source in copyops.resolve_sources(name, self.context.root, [src], in_context=True):
                    unpack = inst.cmd == "add" and not source.is_dir and copyops.is_archive(source.path)
                    found.append(dataclasses.replace(source, unpack=unpack))
        if not found:
            raise errdefs.InvalidParameter(f"{name} failed: no source files were specified")
        return found

    def _download(self, url: str, scratch: Path, want: str) -> Path:
        """ADD <url>: the file as it comes (never unpacked), mode 0600, as dockerd does."""
        name = posixpath.basename(urllib.parse.urlparse(url).path) or "download"
        target = scratch / "download"
        target.mkdir(exist_ok=True)
        path = target / name
        digest = hashlib.sha256()
        try:
            with urllib.request.urlopen(url, timeout=60) as resp, open(path, "wb") as out:  # noqa: S310
                while chunk := resp.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
        except OSError as e:
            raise BuildFailed(f"failed to download {url}: {e}") from None
        if want and want != "sha256:" + digest.hexdigest():
            raise BuildFailed(f"digest mismatch for {url}: expected {want}, got sha256:{digest.hexdigest()}")
        os.chmod(path, 0o600)
        return path

    async def _copy_from(self, inst: parser.Instruction, state: StageState, stages: list[Stage], stage_index: int,
                         from_ref: str, sources: list[str], dest: str, chown: str, chmod: int | None,
                         excludes: list[str], scratch: Path) -> AsyncIterator[stream.Message | None]:
        names = {s.name: s.index for s in stages if s.name}
        index = _Job._stage_ref(from_ref, names, stage_index)
        if index is not None:
            source_image = self.stage_images[index]
        else:
            try:
                source_image = await asyncio.to_thread(self.b._images.resolve, from_ref)
            except errdefs.NotFound:
                raise BuildFailed(f"invalid from flag value {from_ref}: No such image: {from_ref}") from None
        comment = f"COPY from:{source_image.id or 'scratch'} {' '.join(sources)} in {dest} "
        extra = f"chown={chown} chmod={inst.flag('chmod')} exclude={excludes}"
        created_by = " ".join(self._created_by(state, comment))
        key = cachemod.step_key(created_by, state.conf.config, extra)
        hit = self._probe(state, key, created_by)
        if hit is not None:
            state.image = hit
            yield self.say(" ---> Using cache\n")
            yield self.say(f" ---> {stream.short_id(hit.id)}\n")
            return
        snap = self.b._images.scratch_key()
        mounts = self.b._images.prepare(snap, source_image)
        try:
            with copyops.mounted(mounts, scratch / "src") as src_root:
                found = await asyncio.to_thread(
                    lambda: [s for pattern in sources
                             for s in copyops.resolve_sources("COPY", src_root, [pattern], in_context=False)])
                exclude = dockerignore.parse("\n".join(excludes)) if excludes else []
                async for m in self._write(state, comment, extra, found, dest, chown, chmod, exclude, scratch,
                                           key=key):
                    yield m
        finally:
            self.b._images.remove(snap)

    async def _write(self, state: StageState, comment: str, extra: str, found: list[copyops.Source], dest: str,
                     chown: str, chmod: int | None, exclude: list[dockerignore.Pattern], scratch: Path,
                     key: str | None = None) -> AsyncIterator[stream.Message | None]:
        cmd = self._created_by(state, comment)
        created_by = " ".join(cmd)
        key = key or cachemod.step_key(created_by, state.conf.config, extra)
        hit = self._probe(state, key, created_by)
        if hit is not None:
            state.image = hit
            yield self.say(" ---> Using cache\n")
            yield self.say(f" ---> {stream.short_id(hit.id)}\n")
            return

        def work() -> BaseImage:
            snap = self.b._images.scratch_key()
            mounts = self.b._images.prepare(snap, state.image)
            try:
                with copyops.mounted(mounts, scratch / "dst") as rootfs:
                    owner = chownmod.owner(rootfs, chown) if chown else None
                    copyops.copy_into(rootfs, found, dest, owner, chmod, exclude)
                return self.b._images.with_snapshot(
                    state.image, snap,
                    lambda diff_id: self._new_config(state, created_by, cmd, empty=False, diff_id=diff_id))
            finally:
                self.b._images.remove(snap)

        image = await asyncio.to_thread(work)
        self._done(state, key, image)
        yield self.say(f" ---> {stream.short_id(image.id)}\n")


_END = object()  # a stage task's last event


def _exists_below(root: Path, rel: str) -> bool:
    """Whether ``rel`` exists in the tree at ``root``, never following a symlink on the way
    (a base's link must not make a host path count)."""
    path = str(root)
    parts = rel.split("/")
    for i, part in enumerate(parts):
        path = os.path.join(path, part)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return False
        if i < len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
            return False
    return True


def _retrieved(task: asyncio.Task) -> None:
    """A stage's outcome is read from the event queue; mark the task's own copy seen."""
    if not task.cancelled():
        task.exception()


def _quoted(value: str) -> str:
    """A value inside double quotes of a Dockerfile line, taken literally."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")


def _registry_of(address: str) -> str:
    """A config.json key (``https://index.docker.io/v1/``, ``localhost:5000``) as a domain."""
    host = address.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    return "docker.io" if host in ("index.docker.io", "registry-1.docker.io", "docker.io") else host
