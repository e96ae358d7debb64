"""Log driver options at create: moby's merge with the daemon's defaults, its messages, the
shim's settings and inspect's LogPath."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard import errdefs
from dockyard.apitypes.container import HostConfig, LogConfig
from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.containers import create, logdrivers


def merged(type_: str, opts: dict, config: DaemonConfig | None = None) -> LogConfig:
    hc = HostConfig(log_config=LogConfig(type=type_, config=opts))
    create.validate_logging(hc, config or DaemonConfig())
    return hc.log_config


def test_daemon_defaults_fill_only_its_own_driver() -> None:
    assert merged("", {}).config == {"max-size": "20m", "max-file": "5"}
    assert merged("", {"max-size": "1m"}).config == {"max-size": "1m", "max-file": "5"}
    assert merged("json-file", {}).config == {"max-size": "20m", "max-file": "5"}
    assert merged("local", {}).config == {}  # dockerd shows no options: the driver's defaults apply
    daemon = DaemonConfig(log_driver="local", log_opts={"max-file": "3", "compress": "false"})
    log = merged("", {"max-size": "1m"}, daemon)
    assert (log.type, log.config) == ("local", {"max-size": "1m", "max-file": "3", "compress": "false"})
    assert merged("none", {"anything": "x"}).type == "none"  # moby validates nothing for none


@pytest.mark.parametrize("type_,opts,message", [
    ("local", {"bogus": "1"}, "unknown log opt 'bogus' for log driver local"),
    ("json-file", {"bogus": "1"}, "unknown log opt 'bogus' for json-file log driver"),
    ("local", {"max-size": "huge"}, "invalid value for max-size: huge: invalid size: 'huge'"),
    ("local", {"max-file": "x"}, 'invalid value for max-file: x: strconv.Atoi: parsing "x": invalid syntax'),
    ("local", {"compress": "yes"}, "invalid boolean value for compress: strconv.ParseBool"),
    ("local", {"max-file": "-1", "compress": "false"}, "max-file must not be negative"),
    ("local", {"max-file": "1"}, "compression cannot be enabled when max file count is 1"),
    ("syslog", {}, "logger: no log driver named 'syslog' is registered"),
])
def test_bad_options_are_refused_with_moby_messages(type_, opts, message) -> None:
    with pytest.raises(errdefs.InvalidParameter) as err:
        merged(type_, opts)
    assert message in str(err.value)


def test_writer_settings_and_paths(tmp_path: Path) -> None:
    local = LogConfig(type="local", config={})
    assert logdrivers.writer_settings(local) == {
        "log_driver": "local", "log_max_size": 20 * 1024 * 1024, "log_max_files": 5, "log_compress": True}
    small = LogConfig(type="local", config={"max-size": "10k", "max-file": "1", "compress": "false"})
    assert logdrivers.writer_settings(small)["log_max_size"] == 10_000  # decimal, as FromHumanSize
    json_file = LogConfig(type="json-file", config={"max-size": "10k", "max-file": "2"})
    assert logdrivers.writer_settings(json_file) == {
        "log_driver": "json-file", "log_max_size": 10 * 1024, "log_max_files": 2}
    assert logdrivers.log_file(tmp_path, "abc", "local") == str(tmp_path / "local-logs" / "container.log")
    assert logdrivers.log_file(tmp_path, "abc", "json-file") == str(tmp_path / "abc-json.log")
    assert logdrivers.log_file(tmp_path, "abc", "none") == ""
    assert logdrivers.inspect_log_path("local", "/x/container.log") == ""
    assert logdrivers.max_files(local) == 5


def test_daemon_json_local_without_opts_keeps_the_drivers_defaults(tmp_path: Path) -> None:
    from dockyard.cmd.dockyardd import load_config
    conf = tmp_path / "daemon.json"
    conf.write_text('{"log-driver": "local"}')
    config = load_config(["--config-file", str(conf)])
    assert (config.log_driver, config.log_opts) == ("local", {})
    assert merged("", {}, config).config == {}  # inspect shows Config {} as dockerd's
    conf.write_text('{"log-driver": "local", "log-opts": {"max-file": "2"}}')
    assert load_config(["--config-file", str(conf)]).log_opts == {"max-file": "2"}
