"""Registry settings: TLS with a custom CA and client certificates (certs.d), and mirrors."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest

from dockyard import errdefs
from dockyard.apitypes.distribution import AuthConfig
from dockyard.daemon.distribution.service import DistributionService
from dockyard.distribution.client import RegistryClient, RetryPolicy
from dockyard.distribution.endpoints import Endpoints, RegistrySettings
from tests.integration import distribution_registry as dr
from tests.integration.distribution_fake import FakeRegistry, docker_archive, make_image
from tests.integration.image_harness import Harness
from tests.integration.tempdirs import temp_dir

pytestmark = pytest.mark.skipif(not dr.available() or not shutil.which("openssl"),
                                reason="docker-registry or openssl missing")


@pytest.fixture
def root():
    with temp_dir("dy-tls-") as path:
        yield path


def _service(root: Path, **settings) -> tuple[Harness, DistributionService]:
    h = Harness(root / "store")
    client = RegistryClient(Endpoints(RegistrySettings(certs_dir=root / "certs.d", **settings)), timeout=10,
                            retry=RetryPolicy(attempts=1))
    return h, DistributionService(h.config, h.service, client, retry_delay=0.01)


def _run(op, *args) -> list[str]:
    out: list = []
    op(*args, AuthConfig(), out.append)
    return [m.status for m in out if m.status]


@pytest.mark.parametrize("client_certs", [False, True])
def test_tls_with_custom_ca_and_client_certs(root, client_certs):
    certs = dr.make_certs(root / "pki")
    registry = dr.start(tls=certs, client_certs=client_certs)
    h, svc = _service(root, insecure_loopback=False)
    try:
        image = make_image([{"tls": os.urandom(1000)}])
        name = f"{registry.host}/secure/app"
        h.service.load(io.BytesIO(docker_archive(image, f"{name}:v1")))
        with pytest.raises(errdefs.Unavailable, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            _run(svc.push, name, "v1")
        host_dir = root / "certs.d" / registry.host
        host_dir.mkdir(parents=True)
        shutil.copy(certs["ca.crt"], host_dir / "ca.crt")
        if client_certs:
            with pytest.raises(errdefs.Unavailable):
                _run(svc.push, name, "v1")  # the registry wants a client certificate
            shutil.copy(certs["client.crt"], host_dir / "client.cert")
            shutil.copy(certs["client.key"], host_dir / "client.key")
        out = _run(svc.push, name, "v1")
        assert out[-1].startswith("v1: digest: sha256:")
        h.service.remove(image.id, force=True)
        _run(svc.pull, name, "v1", "")
        assert h.service.inspect(f"{name}:v1").id == image.id
    finally:
        svc.close()
        h.db.close()
        dr.stop(registry)


def test_mirror_serves_docker_io_pulls_and_origin_is_the_fallback(root):
    mirror = FakeRegistry()
    mirror.start()
    h, svc = _service(root, mirrors=[f"http://{mirror.host}"])
    try:
        image = make_image([{"m": b"mirror"}])
        mirror.add("library/busybox", "latest", image)
        out = _run(svc.pull, "busybox", "latest", "")
        assert out[-1] == "Status: Downloaded newer image for busybox:latest"
        assert h.service.inspect("busybox:latest").id == image.id
        assert h.service.inspect("busybox").repo_digests == [f"busybox@{image.digest}"]
        # not on the mirror: the origin (Docker Hub) is tried next, unreachable from here
        with pytest.raises(errdefs.DockyardError, match="registry-1.docker.io"):
            _run(svc.pull, "alpine", "latest", "")
    finally:
        svc.close()
        h.db.close()
        mirror.stop()


def test_through_a_proxy_http_and_https_tunnel(root):
    import base64
    from tests.integration.distribution_fake import ForwardProxy
    proxy = ForwardProxy(require_auth=base64.b64encode(b"px:pw").decode())
    certs = dr.make_certs(root / "pki")
    plain = dr.start()
    secure = dr.start(tls=certs)
    (root / "certs.d" / secure.host).mkdir(parents=True)
    shutil.copy(certs["ca.crt"], root / "certs.d" / secure.host / "ca.crt")
    authed = proxy.url.replace("http://", "http://px:pw@")
    h, svc = _service(root, insecure_loopback=False, insecure_registries=[plain.host], proxy_loopback=True,
                      proxies={"http": authed, "https": authed})
    try:
        image = make_image([{"p": os.urandom(2000)}])
        for registry in (plain, secure):
            name = f"{registry.host}/via/proxy"
            h.service.load(io.BytesIO(docker_archive(image, f"{name}:v1")))
            assert _run(svc.push, name, "v1")[-1].startswith("v1: digest:")
            h.service.remove(image.id, force=True)
            _run(svc.pull, name, "v1", "")
            assert h.service.inspect(f"{name}:v1").id == image.id
            h.service.remove(image.id, force=True)
        assert f"CONNECT {secure.host}" in proxy.targets
        assert any(t.startswith(f"GET http://{plain.host}/v2/") for t in proxy.targets)
    finally:
        svc.close()
        h.db.close()
        for registry in (plain, secure):
            dr.stop(registry)
        proxy.stop()
