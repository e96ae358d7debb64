"""Docker's defaults as OCI data: capabilities arithmetic and the base spec."""

from __future__ import annotations

import pytest

from dockyard.errdefs import InvalidParameter
from dockyard.oci import defaults, runtime_spec


def test_capabilities_like_moby():
    assert defaults.capability_list() == list(defaults.DEFAULT_CAPABILITIES)
    caps = defaults.capability_list(cap_add=["net_admin", "CAP_SYS_TIME"], cap_drop=["chown"])
    assert "CAP_CHOWN" not in caps and caps[-2:] == ["CAP_NET_ADMIN", "CAP_SYS_TIME"]
    assert defaults.capability_list(cap_drop=["ALL"], cap_add=["kill"]) == ["CAP_KILL"]
    assert defaults.capability_list(cap_add=["all"], cap_drop=["SYS_ADMIN"]) == [
        c for c in defaults.ALL_CAPABILITIES if c != "CAP_SYS_ADMIN"
    ]
    assert defaults.capability_list(privileged=True) == list(defaults.ALL_CAPABILITIES)
    with pytest.raises(InvalidParameter, match='unknown capability: "CAP_BOGUS"'):
        defaults.capabilities_for(cap_add=["bogus"])
    caps_struct = defaults.capabilities_for()
    assert caps_struct.bounding == caps_struct.effective == caps_struct.permitted and not caps_struct.inheritable


def test_base_spec_round_trips_and_is_complete():
    spec = defaults.base_spec(["sh"], ["A=1"], "/", "/tmp/rootfs", "host")
    decoded = runtime_spec.decode(runtime_spec.encode(spec))
    assert decoded == spec
    assert {ns.type for ns in spec.linux.namespaces} == {"mount", "pid", "uts", "ipc", "network", "cgroup"}
    assert spec.process.env[0].startswith("PATH=") and spec.process.cwd == "/"
    assert [m.destination for m in spec.mounts][:3] == ["/proc", "/dev", "/dev/pts"]
    assert "/proc/kcore" in spec.linux.masked_paths and "/proc/sys" in spec.linux.readonly_paths
    assert spec.linux.seccomp is not None and spec.linux.seccomp.default_action == "SCMP_ACT_ERRNO"
    assert spec.linux.resources.devices[0] == runtime_spec.DeviceCgroup(allow=False, access="rwm")
    privileged = defaults.base_spec(["sh"], [], "/", "/r", "h", privileged=True)
    assert privileged.linux.seccomp is None and not privileged.linux.masked_paths
    sysfs = next(m for m in privileged.mounts if m.destination == "/sys")
    assert "ro" not in sysfs.options


def test_seccomp_follows_capabilities():
    from dockyard.oci.seccomp_default import default_seccomp

    def allowed(profile):
        return {n for rule in profile.syscalls if rule.action == "SCMP_ACT_ALLOW" and not rule.args for n in rule.names}

    plain = default_seccomp(defaults.DEFAULT_CAPABILITIES)
    admin = default_seccomp([*defaults.DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"])
    assert "mount" not in allowed(plain) and "mount" in allowed(admin)
    assert "chroot" in allowed(plain)  # CAP_SYS_CHROOT is a default capability
    assert any(rule.names == ["clone3"] for rule in plain.syscalls)
    assert not any(rule.names == ["clone3"] and rule.action == "SCMP_ACT_ERRNO" for rule in admin.syscalls)


def test_validate_refuses_what_would_touch_the_host():
    from dockyard.errdefs import NotImplementedFeature
    from dockyard.runtime.validate import validate

    def spec(**changes):
        s = defaults.base_spec(["sh"], [], "/", "/r", "h")
        for key, value in changes.items():
            setattr(s.linux, key, value)
        return s

    validate(spec(sysctl={"net.ipv4.ip_forward": "1", "kernel.shmmax": "1"}))
    no_uts = spec(namespaces=[n for n in spec().linux.namespaces if n.type != "uts"])
    with pytest.raises(InvalidParameter, match="without a private UTS namespace"):
        validate(no_uts)
    host_net = spec(namespaces=[n for n in spec().linux.namespaces if n.type != "network"], sysctl={"net.core.somaxconn": "1"})
    with pytest.raises(InvalidParameter, match="host's network namespace"):
        validate(host_net)
    with pytest.raises(InvalidParameter, match="not in a separate kernel namespace"):
        validate(spec(sysctl={"vm.swappiness": "1"}))
    with pytest.raises(InvalidParameter, match="private mount namespace"):
        validate(spec(namespaces=[n for n in spec().linux.namespaces if n.type != "mount"]))
    with pytest.raises(NotImplementedFeature, match="systemd"):
        validate(spec(cgroups_path="system.slice:docker:abc"))


def test_host_devices_and_device_flag():
    from dockyard.runtime.devices import device_from_path, host_devices

    device, rule = device_from_path("/dev/null", "/dev/mynull", "rw")
    assert (device.path, device.type, device.major, device.minor) == ("/dev/mynull", "c", 1, 3)
    assert rule.allow and rule.access == "rw" and (rule.major, rule.minor) == (1, 3)
    with pytest.raises(InvalidParameter):
        device_from_path("/dev/does-not-exist")
    with pytest.raises(InvalidParameter):
        device_from_path("/dev/null", "", "rwx")
    paths = {d.path for d in host_devices()}
    assert "/dev/null" in paths and not any(p.startswith("/dev/pts/") for p in paths)
