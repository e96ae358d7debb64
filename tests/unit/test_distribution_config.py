"""Registry settings from daemon.json and flags reach the registry client."""

from __future__ import annotations

import json

from dockyard.cmd.dockyardd import load_config
from dockyard.daemon.distribution.service import registry_client


def test_daemon_json_registry_keys(tmp_path):
    conf = tmp_path / "daemon.json"
    conf.write_text(json.dumps({"insecure-registries": ["myreg:5000", "10.9.0.0/16"],
                                "registry-mirrors": ["https://mirror.example.com"],
                                "max-concurrent-downloads": 6, "max-concurrent-uploads": 2,
                                "max-download-attempts": 7}))
    cfg = load_config(["--config-file", str(conf)])
    assert cfg.insecure_registries == ["myreg:5000", "10.9.0.0/16"]
    assert cfg.registry_mirrors == ["https://mirror.example.com"]
    assert (cfg.max_concurrent_downloads, cfg.max_concurrent_uploads, cfg.max_download_attempts) == (6, 2, 7)
    client = registry_client(cfg)
    assert client.endpoints.is_insecure("myreg:5000") and client.endpoints.is_insecure("10.9.1.1:443")
    assert [e.url for e in client.endpoints.for_pull("docker.io")] == [
        "https://mirror.example.com", "https://registry-1.docker.io"]


def test_registry_flags(tmp_path):
    cfg = load_config(["--config-file", str(tmp_path / "none.json"), "--insecure-registry", "a:1",
                       "--insecure-registry", "b:2", "--registry-mirror", "http://127.0.0.1:5555",
                       "--max-concurrent-downloads", "1"])
    assert cfg.insecure_registries == ["a:1", "b:2"]
    assert cfg.registry_mirrors == ["http://127.0.0.1:5555"]
    assert cfg.max_concurrent_downloads == 1 and cfg.max_concurrent_uploads == 5
