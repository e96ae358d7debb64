"""The seccomp compiler, checked by loading its programs into the real kernel in a child."""

from __future__ import annotations

import ctypes
import os
import struct

import pytest

from dockyard.oci.defaults import DEFAULT_CAPABILITIES
from dockyard.oci.runtime_spec import Seccomp, SeccompArg, SeccompSyscall
from dockyard.oci.seccomp_default import default_seccomp
from dockyard.runtime import seccomp, syscalls
from dockyard.runtime.syscall_table import SYSCALLS_X86_64
from tests.unit.forked import in_child

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
SYS_GETPGID = 121


def _in_child(program: bytes, probe) -> int:
    """Install ``program`` in a forked child, run ``probe()`` there; return its int result."""
    def body() -> int:
        syscalls.seccomp_filter(program)
        return probe()
    return in_child(body)


def _getpgid_errno(value: int) -> int:
    ctypes.set_errno(0)
    _libc.syscall(ctypes.c_long(SYS_GETPGID), ctypes.c_ulong(value))
    return ctypes.get_errno()


def _profile(op: str, value: int, value_two: int = 0) -> bytes:
    """getpgid fails with errno 77 when the comparison holds; everything else is allowed."""
    return seccomp.compile_filter(
        Seccomp(
            default_action="SCMP_ACT_ALLOW",
            architectures=["SCMP_ARCH_X86_64"],
            syscalls=[
                SeccompSyscall(
                    names=["getpgid"],
                    action="SCMP_ACT_ERRNO",
                    errno_ret=77,
                    args=[SeccompArg(index=0, value=value, value_two=value_two, op=op)],
                )
            ],
        )
    )


BIG = (5 << 32) | 7  # exercises the high word


@pytest.mark.parametrize(
    "op,value,value_two,hits,misses",
    [
        ("SCMP_CMP_EQ", BIG, 0, [BIG], [7, 5 << 32, BIG + 1]),
        ("SCMP_CMP_NE", BIG, 0, [7, BIG + 1], [BIG]),
        ("SCMP_CMP_MASKED_EQ", 0x7E020000, 0, [0x11, 1 << 40], [0x10000000, 0x20000000 | 0x11]),
        ("SCMP_CMP_GT", BIG, 0, [BIG + 1, 6 << 32], [BIG, 7, (4 << 32) | 0xFFFFFFFF]),
        ("SCMP_CMP_GE", BIG, 0, [BIG, 6 << 32], [BIG - 1, 8]),
        ("SCMP_CMP_LT", BIG, 0, [BIG - 1, 9], [BIG, 6 << 32]),
        ("SCMP_CMP_LE", BIG, 0, [BIG, (4 << 32) | 0xFFFFFFFF], [BIG + 1, 6 << 32]),
    ],
)
def test_argument_comparisons(op, value, value_two, hits, misses):
    program = _profile(op, value, value_two)
    for arg in hits:
        assert _in_child(program, lambda: _getpgid_errno(arg)) == 77, (op, hex(arg))
    for arg in misses:
        assert _in_child(program, lambda: _getpgid_errno(arg)) != 77, (op, hex(arg))


def test_docker_default_profile_blocks_and_allows():
    program = seccomp.compile_filter(default_seccomp(DEFAULT_CAPABILITIES))

    def probe():
        ok = os.getpid() > 0 and os.getcwd() is not None
        blocked = []
        for flags in (syscalls.CLONE_NEWUSER, syscalls.CLONE_NEWNS):
            try:
                syscalls.unshare(flags)
            except OSError as err:
                blocked.append(err.errno)
        _libc.personality.argtypes = [ctypes.c_ulong]
        persona_query = _libc.personality(0xFFFFFFFF)
        return int(ok) * 1000 + len(blocked) * 100 + (1 if persona_query >= 0 else 0)

    assert _in_child(program, probe) == 1201


def test_unknown_names_are_skipped_and_bad_input_rejected():
    program = seccomp.compile_filter(
        Seccomp(default_action="SCMP_ACT_ERRNO", syscalls=[SeccompSyscall(names=["no_such_call", "chown32"], action="SCMP_ACT_ALLOW")])
    )
    assert len(program) % 8 == 0
    from dockyard.errdefs import InvalidParameter

    with pytest.raises(InvalidParameter):
        seccomp.compile_filter(Seccomp(default_action="SCMP_ACT_BOGUS"))
    with pytest.raises(InvalidParameter):
        seccomp.compile_filter(Seccomp(default_action="SCMP_ACT_ALLOW", architectures=["SCMP_ARCH_AARCH64"]))


def _run_bpf(program: bytes, nr: int, args: tuple[int, ...] = (0,) * 6, arch: int = seccomp.AUDIT_ARCH_X86_64) -> int:
    """A classic-BPF interpreter for the instructions the compiler emits, over struct seccomp_data."""
    data = struct.pack("<iI Q 6Q", nr, arch, 0, *args)
    insns = [struct.unpack("HBBI", program[i:i + 8]) for i in range(0, len(program), 8)]
    pc = acc = 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x20:  # ld [k]
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == 0x54:  # and #k
            acc &= k
        elif code == 0x06:  # ret #k
            return k
        elif code == 0x05:  # ja
            pc += k
        else:
            taken = {0x15: acc == k, 0x25: acc > k, 0x35: acc >= k}[code]
            pc += jt if taken else jf
        pc += 1


def _expected(profile: Seccomp, nr: int, args: tuple[int, ...]) -> int:
    """What libseccomp's semantics give: the first rule for the call whose comparisons all hold."""
    by_number = {number: name for name, number in SYSCALLS_X86_64.items()}
    name = by_number.get(nr)
    for rule in profile.syscalls:
        if name not in rule.names:
            continue
        if all(_holds(arg, args[arg.index]) for arg in rule.args):
            return seccomp.action_value(rule.action, rule.errno_ret)
    return seccomp.action_value(profile.default_action, profile.default_errno_ret)


def _holds(arg: SeccompArg, value: int) -> bool:
    return {"SCMP_CMP_EQ": value == arg.value, "SCMP_CMP_NE": value != arg.value,
            "SCMP_CMP_GT": value > arg.value, "SCMP_CMP_GE": value >= arg.value,
            "SCMP_CMP_LT": value < arg.value, "SCMP_CMP_LE": value <= arg.value,
            "SCMP_CMP_MASKED_EQ": value & arg.value == arg.value_two}[arg.op]


def test_docker_default_profile_decides_every_call_as_the_profile_says():
    # every syscall number (and some past the table), with argument values that hit and miss
    # the profile's comparisons (clone's namespace flags, personality's values, socket families)
    profile = default_seccomp(DEFAULT_CAPABILITIES)
    program = seccomp.compile_filter(profile)
    assert len(program) // 8 < 200  # runs of calls share their dispatch and their return
    samples = [(0,) * 6, (0x10000000,) + (0,) * 5, (0x20008,) + (0,) * 5, (40,) + (0,) * 5,
               (0xFFFFFFFF,) * 6, ((1 << 40) | 8,) + (0,) * 5]
    for nr in range(max(SYSCALLS_X86_64.values()) + 20):
        for args in samples:
            assert _run_bpf(program, nr, args) == _expected(profile, nr, args), (nr, args)
    allow = seccomp.action_value("SCMP_ACT_ALLOW", None)
    assert _run_bpf(program, 0x40000000 | 1) != allow  # x32: the default action
    assert _run_bpf(program, 1, arch=0x40000003) == seccomp.SECCOMP_RET_KILL_PROCESS  # i386
