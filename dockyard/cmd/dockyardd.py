"""dockyardd: the daemon's command line, dockerd-compatible flags over daemon.json.

Runs in the foreground. Listens on every ``-H`` (unix sockets and TCP, with TLS
when asked), holds an exclusive lock on the data root so a second daemon on the
same root refuses to start, and shuts down cleanly on SIGTERM/SIGINT (running
containers keep running: live-restore).
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import grp
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import sys
from pathlib import Path

from dockyard.apitypes.container import LogConfig
from dockyard.daemon.config import DaemonConfig
from dockyard.daemon.containers import logdrivers
from dockyard.errdefs import InvalidParameter

log = logging.getLogger("dockyardd")

# flag dest -> daemon.json key, for the keys both accept
_CONFIG_KEYS = {
    "data_root": "data-root", "exec_root": "exec-root", "hosts": "hosts", "pidfile": "pidfile",
    "log_level": "log-level", "default_runtime": "default-runtime", "bridge": "bridge",
    "bip": "bip", "default_address_pools": "default-address-pools", "cgroup_parent": "cgroup-parent",
    "live_restore": "live-restore", "iptables": "iptables", "ip_forward": "ip-forward",
    "userland_proxy": "userland-proxy", "icc": "icc",
    "tls": "tls", "tlsverify": "tlsverify", "tlscacert": "tlscacert", "tlscert": "tlscert",
    "tlskey": "tlskey", "debug": "debug", "log_driver": "log-driver", "log_opts": "log-opts",
    "insecure_registries": "insecure-registries", "registry_mirrors": "registry-mirrors",
    "max_concurrent_downloads": "max-concurrent-downloads", "max_concurrent_uploads": "max-concurrent-uploads",
    "max_download_attempts": "max-download-attempts",
}


def _bool(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {value!r}")


def _pool(value: str) -> dict:
    fields = dict(part.split("=", 1) for part in value.split(",") if "=" in part)
    if "base" not in fields or "size" not in fields:
        raise argparse.ArgumentTypeError(f"invalid default address pool {value!r}: want base=CIDR,size=N")
    return {"base": fields["base"], "size": int(fields["size"])}


def _log_opt(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"invalid log opt {value!r}: want key=value")
    return key, val


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dockyardd", description="A self-sufficient runtime for containers (Dockyard)")
    S = argparse.SUPPRESS  # unset flags stay absent, so daemon.json can fill them
    p.add_argument("--data-root", default=S, help="Root directory of persistent state (default /var/lib/dockyard)")
    p.add_argument("--exec-root", default=S, help="Root directory for execution state files (default /run/dockyard)")
    p.add_argument("-H", "--host", dest="hosts", action="append", default=S,
                   help="Daemon socket(s) to connect to (unix:///path, tcp://host:port)")
    p.add_argument("-p", "--pidfile", default=S, help="Path to use for daemon PID file")
    p.add_argument("-l", "--log-level", default=S, choices=["debug", "info", "warn", "error", "fatal"])
    p.add_argument("-D", "--debug", action="store_true", default=S, help="Enable debug mode")
    p.add_argument("--config-file", default="/etc/dockyard/daemon.json", help="Daemon configuration file")
    p.add_argument("--default-runtime", "--runtime", dest="default_runtime", default=S,
                   help="Default OCI runtime for containers: dockyard (builtin) or runc")
    p.add_argument("-b", "--bridge", default=S, help='Attach containers to a network bridge ("none" to disable)')
    p.add_argument("--bip", default=S, help="Specify network bridge IP (CIDR)")
    p.add_argument("--default-address-pool", dest="default_address_pools", action="append", type=_pool,
                   default=S, help="Default address pools for node specific local networks")
    p.add_argument("--cgroup-parent", default=S, help="Set parent cgroup for all containers")
    p.add_argument("--log-driver", default=S,  # checked with the options, in dockerd's words
                   help="Default driver for container logs: json-file (default), local, none")
    p.add_argument("--log-opt", dest="log_opts", action="append", type=_log_opt, default=S,
                   help="Default log driver options for containers (max-size=20m, max-file=5)")
    p.add_argument("--live-restore", type=_bool, nargs="?", const=True, default=S,
                   help="Keep containers running while the daemon is down (default true)")
    p.add_argument("--iptables", type=_bool, nargs="?", const=True, default=S)
    p.add_argument("--ip-forward", type=_bool, nargs="?", const=True, default=S)
    p.add_argument("--userland-proxy", type=_bool, nargs="?", const=True, default=S,
                   help="Use userland proxy for loopback traffic (default true)")
    p.add_argument("--icc", type=_bool, nargs="?", const=True, default=S,
                   help="Enable inter-container communication on the default bridge (default true)")
    p.add_argument("--tls", action="store_true", default=S, help="Use TLS; implied by --tlsverify")
    p.add_argument("--tlsverify", action="store_true", default=S, help="Use TLS and verify the remote")
    p.add_argument("--tlscacert", default=S, help="Trust certs signed only by this CA")
    p.add_argument("--tlscert", default=S, help="Path to TLS certificate file")
    p.add_argument("--tlskey", default=S, help="Path to TLS key file")
    p.add_argument("--plugin-dir", dest="plugin_dirs", action="append", default=S,
                   help="Directory to find volume plugins in (<name>.sock/.spec/.json); replaces "
                        "/run/docker/plugins and /etc/docker/plugins; repeatable")
    p.add_argument("--insecure-registry", dest="insecure_registries", action="append", default=S,
                   help="Enable insecure registry communication")
    p.add_argument("--registry-mirror", dest="registry_mirrors", action="append", default=S,
                   help="Preferred registry mirror")
    p.add_argument("--max-concurrent-downloads", type=int, default=S,
                   help="Set the max concurrent downloads (default 3)")
    p.add_argument("--max-concurrent-uploads", type=int, default=S,
                   help="Set the max concurrent uploads (default 5)")
    p.add_argument("--max-download-attempts", type=int, default=S,
                   help="Set the max download attempts for each pull (default 5)")
    p.add_argument("-v", "--version", action="store_true", help="Print version information and quit")
    return p


def load_config(argv: list[str]) -> DaemonConfig:
    args = vars(parser().parse_args(argv))
    if args.pop("version", False):
        from dockyard.daemon.system import VERSION
        print(f"Dockyard version {VERSION}")
        sys.exit(0)
    config_file = Path(args.pop("config_file"))
    file_values: dict = {}
    if config_file.exists():
        try:
            raw = json.loads(config_file.read_text() or "{}")
        except ValueError as e:
            raise SystemExit(f"dockyardd: invalid daemon configuration file {config_file}: {e}")
        known = {v: k for k, v in _CONFIG_KEYS.items()}
        unknown = [k for k in raw if k not in known and k != "runtimes"]
        if unknown:
            raise SystemExit(f"dockyardd: the following directives don't match any configuration option: {', '.join(unknown)}")
        both = [k for k in raw if k in known and known[k] in args]
        if both:
            raise SystemExit("dockyardd: the following directives are specified both as a flag and in the "
                             f"configuration file: {', '.join(both)}")
        file_values = {known[k]: v for k, v in raw.items() if k in known}
        file_values["runtimes"] = {name: spec["path"] for name, spec in raw.get("runtimes", {}).items()}
    values = {**file_values, **args}
    plugin_dirs = [Path(d).absolute() for d in values.pop("plugin_dirs", [])]
    if isinstance(values.get("log_opts"), list):  # --log-opt k=v, repeated
        values["log_opts"] = dict(values["log_opts"])
    if values.pop("debug", False):
        values["log_level"] = "debug"
    config = DaemonConfig()
    config.config_file = config_file
    if plugin_dirs:  # one flag sets both lists
        config.plugin_socket_dirs, config.plugin_spec_dirs = plugin_dirs, list(plugin_dirs)
    for key, value in values.items():
        if key in ("data_root", "exec_root", "pidfile", "tlscacert", "tlscert", "tlskey"):
            value = Path(value).absolute()
        setattr(config, key, value)
    if config.log_driver != "json-file" and "log_opts" not in values:
        config.log_opts = {}  # the bounded default is json-file's; local has its own, as dockerd's
    _check_log_config(config)
    if config.tlsverify:
        config.tls = True
    if "exec_root" in values and "hosts" not in values:
        config.hosts = [f"unix://{config.exec_root / 'dockyard.sock'}"]
    if config.pidfile is None:
        config.pidfile = config.exec_root / "dockyardd.pid"
    runc = shutil.which("runc") or ("/usr/sbin/runc" if os.path.exists("/usr/sbin/runc") else None)
    if runc and "runc" not in config.runtimes:
        config.runtimes["runc"] = runc
    return config


def _check_log_config(config: DaemonConfig) -> None:
    """dockerd refuses to start with a log driver or option it would refuse at create."""
    try:
        logdrivers.validate(LogConfig(type=config.log_driver, config=dict(config.log_opts)))
    except InvalidParameter as e:
        raise SystemExit(f"failed to start daemon: failed to set log opts: {e}") from None


def _lock_data_root(config: DaemonConfig) -> int:
    config.data_root.mkdir(parents=True, exist_ok=True)
    fd = os.open(config.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        raise SystemExit(f"dockyardd: another daemon (pid {other}) is already using data root "
                         f"{config.data_root}; stop it or pass a different --data-root") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _ssl_context(config: DaemonConfig) -> ssl.SSLContext | None:
    if not config.tls:
        return None
    if not (config.tlscert and config.tlskey):
        raise SystemExit("dockyardd: --tls needs --tlscert and --tlskey")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(config.tlscert), str(config.tlskey))
    if config.tlsverify:
        if not config.tlscacert:
            raise SystemExit("dockyardd: --tlsverify needs --tlscacert")
        ctx.load_verify_locations(str(config.tlscacert))
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _unix_listener(path: str) -> socket.socket:
    """Bind a unix socket, replacing a stale file but never a live daemon's socket."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.exists():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            p.unlink()
        else:
            raise SystemExit(f"dockyardd: {path} is in use by another daemon")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    os.chmod(path, 0o660)
    try:
        os.chown(path, 0, grp.getgrnam("docker").gr_gid)
    except (KeyError, PermissionError):
        pass
    return sock


async def serve(config: DaemonConfig) -> None:
    from aiohttp import web

    from dockyard.api.app import COMMON_HEADERS, PLAIN_ROUTES
    from dockyard.api.fastpath import Listeners
    from dockyard.api.server import build_app
    from dockyard.daemon.daemon import Daemon

    daemon = Daemon(config)
    await daemon.start()
    app = build_app(daemon)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2)
    await runner.setup()
    listeners = Listeners(runner, app[PLAIN_ROUTES], COMMON_HEADERS)
    ssl_ctx = _ssl_context(config)
    unix_paths = []
    for host in config.hosts:
        if host.startswith("unix://"):
            path = host[len("unix://"):]
            await listeners.unix(_unix_listener(path))
            unix_paths.append(path)
        elif host.startswith(("tcp://", "http://")):
            hostport = host.split("://", 1)[1].rstrip("/")
            addr, _, port = hostport.rpartition(":")
            if not ssl_ctx and not addr.startswith("127.") and addr not in ("localhost", "[::1]"):
                log.warning("API listening on %s without TLS: anyone who can reach it is root here", host)
            await listeners.tcp(addr.strip("[]") or "0.0.0.0", int(port or 2375), ssl_ctx)
        else:
            raise SystemExit(f"dockyardd: unsupported host {host!r} (want unix:// or tcp://)")
    log.info("API listening on %s", ", ".join(config.hosts))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        log.info("shutting down")
    finally:
        await listeners.close()
        await daemon.stop()
        for path in unix_paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


def _one_malloc_arena() -> None:
    """glibc gives each thread that allocates an arena of its own (up to 8 per core): those of
    the executor and netns threads held ~7 MB of an idle daemon's RSS. The threads spend their
    time in the kernel with the GIL released, so one shared arena costs no contention. Must run
    before any thread starts."""
    import ctypes

    try:
        ctypes.CDLL(None).mallopt(-8, 1)  # M_ARENA_MAX (malloc.h)
    except AttributeError:
        pass  # not glibc: nothing to tune


def _pure_python_frozenlist() -> None:
    """aiohttp's FrozenLists (the app's signals and middlewares: made at start-up, iterated a
    few times per request) have a C version built as C++: importing it maps libstdc++, ~0.9 MB
    of the daemon's RSS, for API round trips no faster than with the Python version (measured
    with /_ping, /containers/json, /images/json). frozenlist's own switch picks the Python
    one; it must be set before aiohttp is imported (``serve``)."""
    os.environ.setdefault("FROZENLIST_NO_EXTENSIONS", "1")


def main(argv: list[str] | None = None) -> None:
    _one_malloc_arena()
    _pure_python_frozenlist()
    config = load_config(sys.argv[1:] if argv is None else argv)
    level = {"warn": "WARNING", "fatal": "CRITICAL"}.get(config.log_level, config.log_level.upper())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    if os.geteuid() != 0:
        raise SystemExit("dockyardd: needs to be started with root privileges")
    lock_fd = _lock_data_root(config)
    config.exec_root.mkdir(parents=True, exist_ok=True)
    config.pidfile.parent.mkdir(parents=True, exist_ok=True)
    tmp = config.pidfile.with_name(config.pidfile.name + ".tmp")
    tmp.write_text(f"{os.getpid()}")
    os.replace(tmp, config.pidfile)
    try:
        asyncio.run(serve(config))
    finally:
        try:
            config.pidfile.unlink()
        except FileNotFoundError:
            pass
        os.close(lock_fd)


if __name__ == "__main__":
    main()
