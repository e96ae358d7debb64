"""ExecService's pure parts: moby's env merge and exec start error translation."""

from dockyard import errdefs
from dockyard.daemon.containers.exec import replace_or_append_env, start_error


def test_replace_or_append_env():
    base = ["PATH=/bin", "HOSTNAME=h", "A=1"]
    assert replace_or_append_env(base, ["A=2", "B=3"]) == ["PATH=/bin", "HOSTNAME=h", "A=2", "B=3"]
    assert replace_or_append_env(base, ["HOSTNAME"]) == ["PATH=/bin", "A=1"]  # a bare key unsets
    assert replace_or_append_env(base, ["C"]) == base


def test_start_error_codes_and_wording():
    err, code = start_error('exec: "nope": executable file not found in $PATH', "nope")
    assert code == 127 and isinstance(err, errdefs.InvalidParameter)
    assert err.message == ('OCI runtime exec failed: exec failed: unable to start container process: '
                           'exec: "nope": executable file not found in $PATH: unknown')
    err, code = start_error('exec: "/etc/passwd": permission denied', "/etc/passwd")
    assert code == 126 and isinstance(err, errdefs.InvalidParameter)
    # runc already says "exec failed: ..."; not prefixed twice
    err, code = start_error('exec failed: unable to start container process: exec: "x": stat x: no such file '
                            'or directory', "x")
    assert code == 127 and err.message.count("exec failed: unable to start") == 1
    err, code = start_error("something broke", "sh")
    assert code == 126 and isinstance(err, errdefs.System)
