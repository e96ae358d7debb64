"""The CLI's --mount parser (docker's opts.MountOpt): fields, defaults and errors."""

from __future__ import annotations

import pytest

from dockyard.cli.runopts import OptionError, _csv_fields, _mount


def test_fields_and_quotes():
    assert _csv_fields('a=1,"b=x,y",c') == ["a=1", "b=x,y", "c"]
    assert _csv_fields("") == []


def test_kinds():
    assert _mount("type=bind,src=/a,dst=/b,readonly,bind-propagation=rslave,bind-recursive=writable") == {
        "Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": True,
        "BindOptions": {"Propagation": "rslave", "ReadOnlyNonRecursive": True}}
    assert _mount('source=v,target=/x,volume-driver=d,"volume-opt=o=size=1m,uid=0",volume-nocopy,'
                  "volume-subpath=s,volume-label=l=1,ro=false") == {
        "Type": "volume", "Source": "v", "Target": "/x", "ReadOnly": False,
        "VolumeOptions": {"DriverConfig": {"Name": "d", "Options": {"o": "size=1m,uid=0"}}, "NoCopy": True,
                          "Subpath": "s", "Labels": {"l": "1"}}}
    assert _mount("type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1770") == {
        "Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 64 << 20, "Mode": 0o1770}}


@pytest.mark.parametrize("spec, reason", [
    ("type=bind,src=/a", "target is required"),
    ("type=tmpfs,dst=/t,volume-nocopy", "cannot mix 'volume-*' options with mount type 'tmpfs'"),
    ("type=bind,src=/a,dst=/b,bind-recursive=readonly",
     "option 'bind-recursive=readonly' requires 'readonly' to be specified in conjunction"),
    ("type=bind,src=/a,dst=/b,bind-recursive=maybe",
     'invalid value for bind-recursive: maybe (must be "enabled", "disabled", "writable", or "readonly")'),
    ("dst=/b,foo=1", "unexpected key 'foo' in 'foo=1'"),
    ("dst=/b,bogus", "invalid field 'bogus' must be a key=value pair"),
    ("dst=/b,readonly=perhaps", "invalid value for readonly: perhaps"),
    ("type=tmpfs,dst=/t,tmpfs-mode=9z", "invalid value for tmpfs-mode: 9z"),
])
def test_errors(spec, reason):
    with pytest.raises(OptionError) as e:
        _mount(spec)
    assert str(e.value) == f'invalid argument "{spec}" for "--mount" flag: {reason}'
