"""Log driver options at create: moby's merge with the daemon's defaults, its messages, the
shim's settings and inspect's LogPath."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard import errdefs
from dockyard.apitypes.container import ContainerConfig, HostConfig, LogConfig
from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.containers import create, logdrivers
from dockyard.daemon.containers.logs import details_prefix
from dockyard.daemon.containers.record import ContainerRecord

REC = ContainerRecord(
    id="c" * 64, name="web", created="2026-11-29T00:00:00Z", image_id="sha256:" + "e" * 64,
    path="sh", args=["-c", "echo hi"], host_config=HostConfig(), log_path="/x/c-json.log",
    config=ContainerConfig(image="busybox", env=["A=1", "APP_MODE=prod", "APP_X=a=b", "PATH=/bin"],
                           labels={"com.site": "web", "tier": "front end", "other": "x"}))


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
    ("json-file", {"compress": "true", "max-file": "1"},
     "compress cannot be true when max-file is less than 2 or max-size is not set"),
    ("json-file", {"max-size": "0"}, "max-size must be a positive number"),
    ("json-file", {"compress": "maybe"}, 'strconv.ParseBool: parsing "maybe": invalid syntax'),
    ("json-file", {"tag": "{{.Nope}}"}, "can't evaluate field Nope in type *logger.Info"),
    ("local", {"labels-regex": "("}, "error parsing regexp for labels-regex"),
])
def test_bad_options_are_refused_with_moby_messages(type_, opts, message) -> None:
    with pytest.raises(errdefs.InvalidParameter) as err:
        merged(type_, opts)
    assert message in str(err.value)


def test_writer_settings_and_paths(tmp_path: Path) -> None:
    local = LogConfig(type="local", config={})
    assert logdrivers.writer_settings(local, REC) == {
        "log_driver": "local", "log_max_size": 20 * 1024 * 1024, "log_max_files": 5, "log_compress": True,
        "log_attrs": ()}
    small = LogConfig(type="local", config={"max-size": "10k", "max-file": "1", "compress": "false"})
    assert logdrivers.writer_settings(small, REC)["log_max_size"] == 10_000  # decimal, as FromHumanSize
    json_file = LogConfig(type="json-file", config={"max-size": "10k", "max-file": "2", "compress": "1"})
    assert logdrivers.writer_settings(json_file, REC) == {
        "log_driver": "json-file", "log_max_size": 10_000, "log_max_files": 2, "log_compress": True,
        "log_attrs": ()}
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


def test_attrs_as_moby_extra_attributes_and_tag() -> None:
    log = LogConfig(type="json-file", config={
        "labels": "com.site,missing", "labels-regex": "^ti", "env": "A,NOPE", "env-regex": "^APP_",
        "tag": "{{.ImageName}}/{{.Name}}/{{ .ID }}"})
    assert logdrivers.log_attrs(log, REC) == (
        ("A", "1"), ("APP_MODE", "prod"), ("APP_X", "a=b"), ("com.site", "web"),
        ("tag", "busybox/web/cccccccccccc"), ("tier", "front end"))
    assert logdrivers.log_attrs(LogConfig(type="local", config={"tag": "{{.FullID}}"}), REC) == \
        (("tag", "c" * 64),)
    assert logdrivers.log_attrs(LogConfig(type="json-file", config={}), REC) == ()
    assert logdrivers.log_attrs(LogConfig(type="none", config={"tag": "x"}), REC) == ()


def test_details_prefix_as_dockerd() -> None:
    assert details_prefix(()) == b" "
    assert details_prefix((("tier", "front end"), ("a/b", "x&y"))) == b"a%2Fb=x%26y,tier=front+end "


def test_daemon_refuses_to_start_with_bad_log_opts(tmp_path: Path) -> None:
    from dockyard.cmd.dockyardd import load_config
    conf = tmp_path / "daemon.json"
    for body, message in (
            ('{"log-opts": {"max-age": "1"}}', "unknown log opt 'max-age' for json-file log driver"),
            ('{"log-driver": "syslog"}', "logger: no log driver named 'syslog' is registered"),
            ('{"log-driver": "local", "log-opts": {"max-file": "x"}}', "invalid value for max-file")):
        conf.write_text(body)
        with pytest.raises(SystemExit) as exit_:
            load_config(["--config-file", str(conf)])
        assert str(exit_.value).startswith("failed to start daemon: failed to set log opts: ")
        assert message in str(exit_.value)
    conf.write_text("{}")
    for flags, message in ((["--log-driver", "syslog"], "no log driver named 'syslog'"),
                           (["--log-opt", "max-file=x"], "max-file cannot be less than 1")):
        with pytest.raises(SystemExit) as exit_:
            load_config(["--config-file", str(conf), *flags])
        assert message in str(exit_.value)


def test_logs_details_prefix_each_line_after_its_timestamp(tmp_path: Path) -> None:
    import asyncio

    from dockyard.daemon.containers import logs
    from dockyard.shim.jsonlog import JsonLogWriter

    path = tmp_path / "c-json.log"
    w = JsonLogWriter(path, attrs=(("tag", "web 1"), ("a", "b")))
    w.write("stdout", b"hi\n")
    w.close()
    rec = ContainerRecord(id="c" * 64, name="web", created="", image_id="sha256:x", path="sh",
                          args=[], config=ContainerConfig(), log_path=str(path),
                          host_config=HostConfig(log_config=LogConfig(type="json-file", config={})))

    async def read(options: logs.LogOptions) -> list[bytes]:
        return [data async for _, data in logs.read(rec, options, lambda: True)]

    assert asyncio.run(read(logs.LogOptions(details=True))) == [b"a=b,tag=web+1 hi\n"]
    stamped = asyncio.run(read(logs.LogOptions(details=True, timestamps=True)))[0]
    assert stamped.endswith(b"Z a=b,tag=web+1 hi\n")  # dockerd: time, then attrs, then the line
