import json
from pathlib import Path

import pytest

from dockyard.cmd.dockyardd import load_config


def test_flags_and_derived_defaults(tmp_path):
    cfg = load_config(["--data-root", str(tmp_path / "d"), "--exec-root", str(tmp_path / "e"),
                       "--config-file", str(tmp_path / "none.json"), "--bip", "10.1.2.1/24", "-b", "br9"])
    assert cfg.data_root == tmp_path / "d"
    assert cfg.hosts == [f"unix://{tmp_path / 'e' / 'dockyard.sock'}"]
    assert cfg.pidfile == tmp_path / "e" / "dockyardd.pid"
    assert cfg.bip == "10.1.2.1/24" and cfg.bridge == "br9"


def test_daemon_json_fills_and_conflicts(tmp_path):
    conf = tmp_path / "daemon.json"
    conf.write_text(json.dumps({"data-root": str(tmp_path / "x"), "debug": True,
                                "runtimes": {"crun": {"path": "/usr/bin/crun"}}}))
    cfg = load_config(["--config-file", str(conf)])
    assert cfg.data_root == tmp_path / "x" and cfg.log_level == "debug"
    assert cfg.runtimes["crun"] == "/usr/bin/crun"
    with pytest.raises(SystemExit, match="specified both as a flag and in the configuration file: data-root"):
        load_config(["--config-file", str(conf), "--data-root", "/y"])
    conf.write_text(json.dumps({"no-such-key": 1}))
    with pytest.raises(SystemExit, match="don't match any configuration option: no-such-key"):
        load_config(["--config-file", str(conf)])
    conf.write_text("{bad")
    with pytest.raises(SystemExit, match="invalid daemon configuration file"):
        load_config(["--config-file", str(conf)])


def test_default_address_pool_flag(tmp_path):
    cfg = load_config(["--config-file", str(tmp_path / "n.json"),
                       "--default-address-pool", "base=10.9.0.0/16,size=24"])
    assert cfg.default_address_pools == [{"base": "10.9.0.0/16", "size": 24}]


def test_log_defaults_are_bounded_and_configurable(tmp_path):
    cfg = load_config(["--config-file", str(tmp_path / "n.json")])
    assert cfg.log_driver == "json-file" and cfg.log_opts == {"max-size": "20m", "max-file": "5"}
    cfg = load_config(["--config-file", str(tmp_path / "n.json"), "--log-opt", "max-size=1m",
                       "--log-opt", "max-file=2"])
    assert cfg.log_opts == {"max-size": "1m", "max-file": "2"}
    conf = tmp_path / "daemon.json"
    conf.write_text(json.dumps({"log-driver": "none", "log-opts": {}}))
    cfg = load_config(["--config-file", str(conf)])
    assert cfg.log_driver == "none" and cfg.log_opts == {}
