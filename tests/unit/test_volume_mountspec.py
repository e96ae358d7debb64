"""Parsing of -v, --mount and --volumes-from into MountRequests, with Docker's errors."""

from __future__ import annotations

import tempfile

import pytest

from dockyard import errdefs
from dockyard.apitypes.volume import BindOptions, DriverConfig, MountSpec, TmpfsOptions, VolumeOptions
from dockyard.volume import mountspec


def test_bind_with_modes():
    req = mountspec.parse_bind("/host/dir/:/data:ro,rshared")
    assert (req.type, req.source, req.destination, req.read_only) == ("bind", "/host/dir", "/data", True)
    assert req.propagation == "rshared" and req.create_source and req.mode == "ro,rshared"


def test_bind_default_propagation_and_z():
    req = mountspec.parse_bind("/h:/c:z")
    assert req.propagation == "rprivate" and not req.read_only and req.mode == "z"


def test_named_and_anonymous_volume():
    named = mountspec.parse_bind("data:/var/lib/x")
    assert (named.type, named.source, named.mode) == ("volume", "data", "z")
    anonymous = mountspec.parse_bind("/only/dest")
    assert (anonymous.type, anonymous.source) == ("volume", "")
    nocopy = mountspec.parse_bind("data:/x:nocopy,ro")
    assert nocopy.nocopy and nocopy.read_only


@pytest.mark.parametrize("spec, message", [
    ("a:b:c:d", "invalid volume specification: 'a:b:c:d'"),
    ("/x:", "invalid volume specification: '/x:'"),
    ("data:rel", "invalid volume specification: 'data:rel': invalid mount config for type \"volume\": "
                 "invalid mount path: 'rel' mount path must be absolute"),
    ("/h:/", "destination can't be '/'"),
    ("/h:/proc", 'cannot be mounted because it is located inside "/proc"'),
    ("/h:/proc/sys", 'located inside "/proc"'),
    ("/h:/c:ro,rw", "invalid mode: ro,rw"),
    ("/h:/c:bogus", "invalid mode: bogus"),
    ("/h:/c:nocopy", "invalid mode: nocopy"),
    ("vol:/c:rshared", "invalid mode: rshared"),
])
def test_bind_errors(spec, message):
    with pytest.raises(errdefs.InvalidParameter) as e:
        mountspec.parse_bind(spec)
    assert message in str(e.value)


def test_mount_bind_must_exist():
    with pytest.raises(errdefs.InvalidParameter) as e:
        mountspec.parse_mount(MountSpec(type="bind", source="/no/such/dir/xyz", target="/x"))
    assert str(e.value) == 'invalid mount config for type "bind": bind source path does not exist: /no/such/dir/xyz'


def test_mount_bind_options():
    with tempfile.TemporaryDirectory() as d:
        req = mountspec.parse_mount(MountSpec(type="bind", source=d, target="/x", read_only=True,
                                              bind_options=BindOptions(propagation="rslave", non_recursive=True)))
        assert (req.source, req.read_only, req.propagation, req.recursive) == (d, True, "rslave", "disabled")
        assert not req.create_source


def test_mount_volume_options():
    req = mountspec.parse_mount(MountSpec(type="volume", source="v", target="/x", volume_options=VolumeOptions(
        no_copy=True, labels={"a": "b"}, subpath="sub/dir",
        driver_config=DriverConfig(name="dirplugin", options={"mode": "0700"}))))
    assert req.nocopy and req.labels == {"a": "b"} and req.subpath == "sub/dir"
    assert req.driver == "dirplugin" and req.driver_opts == {"mode": "0700"}


@pytest.mark.parametrize("spec, message", [
    (MountSpec(type="volume", source="v", target="/x", volume_options=VolumeOptions(subpath="../up")),
     "subpath must be a relative path within the volume"),
    (MountSpec(type="volume", source="v", target="/x", volume_options=VolumeOptions(subpath="/abs")),
     "subpath must be a relative path within the volume"),
    (MountSpec(type="volume", target="/x", bind_options=BindOptions()), "field BindOptions must not be specified"),
    (MountSpec(type="tmpfs", source="x", target="/x"), "field Source must not be specified"),
    (MountSpec(type="bind", target="/x"), "field Source must not be empty"),
    (MountSpec(type="weird", target="/x"), "mount type unknown"),
    (MountSpec(type="tmpfs", target="rel"), "mount path must be absolute"),
])
def test_mount_errors(spec, message):
    with pytest.raises(errdefs.InvalidParameter) as e:
        mountspec.parse_mount(spec)
    assert message in str(e.value)


def test_tmpfs_options():
    req = mountspec.parse_mount(MountSpec(type="tmpfs", target="/t",
                                          tmpfs_options=TmpfsOptions(size_bytes=1048576, mode=0o1770)))
    assert req.tmpfs_options == ["size=1048576", "mode=1770"]


def test_volumes_from():
    assert mountspec.parse_volumes_from("c1") == ("c1", "")
    assert mountspec.parse_volumes_from("c1:ro") == ("c1", "ro")
    with pytest.raises(errdefs.InvalidParameter):
        mountspec.parse_volumes_from("c1:rshared")


def test_bind_recursive_modes():
    with tempfile.TemporaryDirectory() as d:
        writable = mountspec.parse_mount(MountSpec(type="bind", source=d, target="/x", read_only=True,
                                                   bind_options=BindOptions(read_only_non_recursive=True)))
        assert writable.recursive == "writable"
        with pytest.raises(errdefs.InvalidParameter, match="requires ReadOnly"):
            mountspec.parse_mount(MountSpec(type="bind", source=d, target="/x",
                                            bind_options=BindOptions(read_only_force_recursive=True)))
        forced = mountspec.parse_mount(MountSpec(type="bind", source=d, target="/x", read_only=True,
                                                 bind_options=BindOptions(read_only_force_recursive=True)))
        assert forced.recursive == "readonly"
        with pytest.raises(errdefs.InvalidParameter, match="conflicts with ReadOnlyNonRecursive"):
            mountspec.parse_mount(MountSpec(type="bind", source=d, target="/x", read_only=True, bind_options=BindOptions(
                read_only_force_recursive=True, read_only_non_recursive=True)))
