"""Metadata instructions on a run config, the cache key, and the context reader (no daemon)."""

import io
import tarfile

import pytest

from dockyard import errdefs
from dockyard.daemon.build import cache, context, dockerfile, instructions
from dockyard.oci import image_spec as spec


def apply(line: str, stage: instructions.StageConfig, env=None) -> str:
    inst = dockerfile.parse("FROM scratch\n" + line).instructions[1]
    return instructions.apply(inst, stage, env or {})


def test_metadata_instructions_change_the_config():
    stage = instructions.StageConfig(config=spec.ContainerConfig(cmd=["sh"], env=["PATH=/bin"]))
    assert apply("ENV A=1 B=\"x y\"", stage) == "ENV A=1 B=x y"
    assert stage.config.env == ["PATH=/bin", "A=1", "B=x y"]
    apply("ENV A legacy form value", stage)
    assert stage.config.env[-1] == "A=legacy form value"
    apply("LABEL k=$V", stage, {"V": "expanded"})
    assert stage.config.labels == {"k": "expanded"}
    assert apply("EXPOSE 80 8000-8001/udp", stage) == "EXPOSE 80/tcp 8000/udp 8001/udp"
    apply("WORKDIR /a", stage)
    apply("WORKDIR b/../c", stage)
    assert stage.config.working_dir == "/a/c"
    apply("ENTRYPOINT [\"/bin/echo\"]", stage)
    assert stage.config.entrypoint == ["/bin/echo"] and stage.config.cmd is None  # inherited CMD reset
    assert apply("CMD echo hi", stage) == 'CMD ["/bin/sh" "-c" "echo hi"]'
    apply("ENTRYPOINT [\"/bin/true\"]", stage)
    assert stage.config.cmd == ["/bin/sh", "-c", "echo hi"]  # a CMD of this stage stays
    apply("SHELL [\"/bin/bash\", \"-c\"]", stage)
    apply("CMD run me", stage)
    assert stage.config.cmd == ["/bin/bash", "-c", "run me"]
    apply("HEALTHCHECK --interval=1m30s --timeout=500ms CMD [\"true\"]", stage)
    assert stage.config.healthcheck == spec.HealthConfig(test=["CMD", "true"], interval=90_000_000_000,
                                                          timeout=500_000_000)
    apply("HEALTHCHECK NONE", stage)
    assert stage.config.healthcheck.test == ["NONE"]
    apply("VOLUME /v1 /v2", stage)
    assert stage.config.volumes == {"/v1": {}, "/v2": {}}
    apply("ONBUILD RUN echo later", stage)
    assert stage.config.on_build == ["RUN echo later"]


def test_metadata_instruction_errors():
    stage = instructions.StageConfig(config=spec.ContainerConfig())
    with pytest.raises(errdefs.InvalidParameter, match="line 2: Syntax error - can't find ="):
        apply("ENV a=1 b", stage)
    with pytest.raises(errdefs.InvalidParameter, match="invalid containerPort: x"):
        apply("EXPOSE x", stage)
    with pytest.raises(errdefs.InvalidParameter, match="ONBUILD ONBUILD"):
        apply("ONBUILD ONBUILD RUN x", stage)
    with pytest.raises(errdefs.InvalidParameter, match="invalid duration"):
        apply("HEALTHCHECK --interval=soon CMD true", stage)


def test_cache_key_depends_on_command_config_and_sources():
    config = spec.ContainerConfig(env=["A=1"])
    key = cache.step_key("/bin/sh -c make", config)
    assert key == cache.step_key("/bin/sh -c make", spec.ContainerConfig(env=["A=1"]))
    assert key != cache.step_key("/bin/sh -c make", spec.ContainerConfig(env=["A=2"]))
    assert key != cache.step_key("/bin/sh -c make install", config)
    assert key != cache.step_key("/bin/sh -c make", config, "chown=1")


def test_context_reads_tar_dockerfile_and_ignore(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path, data in {"sub/Dockerfile.dev": b"FROM busybox\n", "keep": b"k", "drop.tmp": b"d",
                           "sub/Dockerfile.dev.dockerignore": b"*.tmp\n"}.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    ctx = context.open_context(buf, "sub/Dockerfile.dev", "", tmp_path)
    try:
        assert ctx.dockerfile == "FROM busybox\n"
        assert (ctx.root / "keep").exists() and not (ctx.root / "drop.tmp").exists()
    finally:
        ctx.close()
    assert not ctx.root.exists()
    with pytest.raises(errdefs.InvalidParameter, match="Cannot locate specified Dockerfile: nope"):
        context.open_context(io.BytesIO(buf.getvalue()), "nope", "", tmp_path)
    assert list(tmp_path.iterdir()) == []  # a refused context leaves nothing behind
