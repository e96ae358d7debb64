"""Refuse specs the runtime cannot honour safely, before anything is created (runc's validator).

Each check prevents a container from silently changing the host: a hostname
without its own UTS namespace would rename the host, a net.* sysctl without a
network namespace would retune the host's stack, and without a private mount
namespace the container's mounts would land in the host's table.
"""

from __future__ import annotations

from dockyard import errdefs
from dockyard.oci.runtime_spec import Spec

# sysctls that belong to the IPC namespace (the rest of kernel.* is host-wide)
_IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
                "kernel.shmmni", "kernel.shm_rmid_forced"}


def validate(spec: Spec) -> None:
    namespaces = {ns.type for ns in spec.linux.namespaces}
    if not spec.process.args:
        raise errdefs.InvalidParameter("args must not be empty")
    if "mount" not in namespaces:
        raise errdefs.InvalidParameter("the dockyard runtime requires a private mount namespace")
    if (spec.hostname or spec.domainname) and "uts" not in namespaces:
        raise errdefs.InvalidParameter("unable to set hostname without a private UTS namespace")
    if spec.linux.cgroups_path and ":" in spec.linux.cgroups_path:
        raise errdefs.NotImplementedFeature(
            f"cgroups path {spec.linux.cgroups_path!r} is in systemd slice:prefix:name form; "
            "the dockyard runtime manages cgroupfs paths only (use --exec-opt native.cgroupdriver=cgroupfs)"
        )
    for key in spec.linux.sysctl:
        if key.startswith("net."):
            if "network" not in namespaces:
                raise errdefs.InvalidParameter(f"sysctl {key!r} is not allowed in the host's network namespace")
        elif key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if "ipc" not in namespaces:
                raise errdefs.InvalidParameter(f"sysctl {key!r} is not allowed in the host's IPC namespace")
        elif key == "kernel.domainname" or key == "kernel.hostname":
            if "uts" not in namespaces:
                raise errdefs.InvalidParameter(f"sysctl {key!r} is not allowed in the host's UTS namespace")
        else:
            raise errdefs.InvalidParameter(f"sysctl {key!r} is not in a separate kernel namespace")
