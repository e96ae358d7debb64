"""Compile an OCI ``Seccomp`` profile into a classic-BPF program for x86_64.

Semantics follow libseccomp as runc uses it: for a syscall, its rules are tried
in profile order and the first whose argument comparisons all hold gives the
action; a syscall with no matching rule gets the default action. Names this
architecture does not have are skipped (runc does the same). Only the native
x86_64 ABI gets a syscall table: x32 calls receive the default action and
foreign architectures (i386) are killed, as libseccomp does for architectures
not compiled into the filter.

The program is emitted backwards (from the last instruction to the first),
so every jump target is already placed when the jump is written; conditional
jumps farther than 255 instructions go through an unconditional ``ja``.
"""

from __future__ import annotations

import struct

from dockyard.errdefs import InvalidParameter
from dockyard.oci.runtime_spec import Seccomp, SeccompArg
from dockyard.runtime.syscall_table import SYSCALLS_X86_64

# BPF opcodes (linux/filter.h)
_LD_W_ABS = 0x20
_ALU_AND_K = 0x54
_JA = 0x05
_JEQ_K = 0x15
_JGT_K = 0x25
_JGE_K = 0x35
_RET_K = 0x06

# struct seccomp_data offsets
_OFF_NR = 0
_OFF_ARCH = 4
_OFF_ARGS = 16

AUDIT_ARCH_X86_64 = 0xC000003E
_X32_SYSCALL_BIT = 0x40000000

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_KILL_THREAD = 0x00000000
SECCOMP_RET_TRAP = 0x00030000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_TRACE = 0x7FF00000
SECCOMP_RET_LOG = 0x7FFC0000
SECCOMP_RET_ALLOW = 0x7FFF0000
_EPERM = 1


def action_value(action: str, errno_ret: int | None) -> int:
    """The filter return value for an OCI action name."""
    if action == "SCMP_ACT_ALLOW":
        return SECCOMP_RET_ALLOW
    if action == "SCMP_ACT_ERRNO":
        return SECCOMP_RET_ERRNO | ((_EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    if action == "SCMP_ACT_TRACE":
        return SECCOMP_RET_TRACE | ((_EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    if action in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return SECCOMP_RET_KILL_THREAD
    if action == "SCMP_ACT_KILL_PROCESS":
        return SECCOMP_RET_KILL_PROCESS
    if action == "SCMP_ACT_TRAP":
        return SECCOMP_RET_TRAP
    if action == "SCMP_ACT_LOG":
        return SECCOMP_RET_LOG
    raise InvalidParameter(f"seccomp: unsupported action {action!r}")


class _Assembler:
    """Backwards emitter: positions are counted from the end of the program."""

    def __init__(self) -> None:
        self._rev: list[tuple[int, int, int, int]] = []

    @property
    def here(self) -> int:
        """Label of the next instruction to be emitted (it will run before everything emitted so far)."""
        return len(self._rev)

    def _offset(self, target: int) -> int:
        return len(self._rev) - target - 1

    def stmt(self, code: int, k: int) -> int:
        self._rev.append((code, 0, 0, k & 0xFFFFFFFF))
        return self.here - 1

    def ret(self, value: int) -> int:
        return self.stmt(_RET_K, value)

    def jump(self, code: int, k: int, if_true: int, if_false: int) -> int:
        if self._offset(if_false) > 255:
            if_false = self.stmt(_JA, self._offset(if_false))
        if self._offset(if_true) > 255:
            if_true = self.stmt(_JA, self._offset(if_true))
        self._rev.append((code, self._offset(if_true), self._offset(if_false), k & 0xFFFFFFFF))
        return self.here - 1

    def program(self) -> bytes:
        return b"".join(struct.pack("HBBI", *ins) for ins in reversed(self._rev))


def _compare(asm: _Assembler, arg: SeccompArg, success: int, fail: int) -> int:
    """Emit one 64-bit argument comparison; returns its entry label."""
    if not 0 <= arg.index <= 5:
        raise InvalidParameter(f"seccomp: argument index {arg.index} out of range")
    lo_off = _OFF_ARGS + 8 * arg.index
    hi_off = lo_off + 4
    value_lo, value_hi = arg.value & 0xFFFFFFFF, (arg.value >> 32) & 0xFFFFFFFF
    op = arg.op
    if op in ("SCMP_CMP_EQ", "SCMP_CMP_NE"):
        yes, no = (success, fail) if op == "SCMP_CMP_EQ" else (fail, success)
        asm.jump(_JEQ_K, value_lo, yes, no)
        lo = asm.stmt(_LD_W_ABS, lo_off)
        asm.jump(_JEQ_K, value_hi, lo, no)
        return asm.stmt(_LD_W_ABS, hi_off)
    if op == "SCMP_CMP_MASKED_EQ":
        want_lo, want_hi = arg.value_two & 0xFFFFFFFF, (arg.value_two >> 32) & 0xFFFFFFFF
        asm.jump(_JEQ_K, want_lo, success, fail)
        asm.stmt(_ALU_AND_K, value_lo)
        lo = asm.stmt(_LD_W_ABS, lo_off)
        asm.jump(_JEQ_K, want_hi, lo, fail)
        asm.stmt(_ALU_AND_K, value_hi)
        return asm.stmt(_LD_W_ABS, hi_off)
    if op in ("SCMP_CMP_GT", "SCMP_CMP_GE"):
        # hi > v_hi -> true; hi == v_hi -> compare lo; else false
        asm.jump(_JGT_K if op == "SCMP_CMP_GT" else _JGE_K, value_lo, success, fail)
        lo = asm.stmt(_LD_W_ABS, lo_off)
        equal = asm.jump(_JEQ_K, value_hi, lo, fail)
        asm.jump(_JGT_K, value_hi, success, equal)
        return asm.stmt(_LD_W_ABS, hi_off)
    if op in ("SCMP_CMP_LT", "SCMP_CMP_LE"):
        # hi < v_hi -> true; hi == v_hi -> compare lo; else false
        if op == "SCMP_CMP_LT":
            asm.jump(_JGE_K, value_lo, fail, success)
        else:
            asm.jump(_JGT_K, value_lo, fail, success)
        lo = asm.stmt(_LD_W_ABS, lo_off)
        equal = asm.jump(_JEQ_K, value_hi, lo, fail)
        asm.jump(_JGE_K, value_hi, equal, success)
        return asm.stmt(_LD_W_ABS, hi_off)
    raise InvalidParameter(f"seccomp: unsupported comparison {op!r}")


def compile_filter(profile: Seccomp) -> bytes:
    """The BPF program (packed ``struct sock_filter``) for ``profile``."""
    default = action_value(profile.default_action, profile.default_errno_ret)
    archs = profile.architectures
    if archs and "SCMP_ARCH_X86_64" not in archs:
        raise InvalidParameter("seccomp: the profile does not cover SCMP_ARCH_X86_64, this machine's architecture")

    # syscall number -> [(args, action)] in profile order
    rules: dict[int, list[tuple[list[SeccompArg], int]]] = {}
    for rule in profile.syscalls:
        action = action_value(rule.action, rule.errno_ret)
        for name in rule.names:
            nr = SYSCALLS_X86_64.get(name)
            if nr is not None:
                rules.setdefault(nr, []).append((rule.args, action))

    asm = _Assembler()
    default_label = asm.ret(default)
    returns = {default: default_label}  # one return per action, shared by every syscall it ends

    def ret(action: int) -> int:
        if action not in returns:
            returns[action] = asm.ret(action)
        return returns[action]

    bodies: dict[int, int] = {}
    for nr in sorted(rules, reverse=True):
        # rule bodies, last rule first; a failed rule falls through to the next one
        fail = default_label
        for args, action in reversed(rules[nr]):
            if not args:
                fail = ret(action)
                continue
            success = ret(action)
            entry = success
            # all comparisons must hold: chain them, last first
            for arg in reversed(args):
                entry = _compare(asm, arg, success, fail)
                success = entry
            fail = entry
        bodies[nr] = fail

    # runs of consecutive syscall numbers that go to the same place, as (first, last, label):
    # Docker's default profile allows ~350 calls in a few dozen runs
    runs: list[tuple[int, int, int]] = []
    for nr in sorted(bodies):
        if runs and runs[-1][1] == nr - 1 and runs[-1][2] == bodies[nr]:
            runs[-1] = (runs[-1][0], nr, bodies[nr])
        else:
            runs.append((nr, nr, bodies[nr]))

    def check(run: tuple[int, int, int], otherwise: int) -> int:
        first, last, label = run
        if first == last:
            return asm.jump(_JEQ_K, first, label, otherwise)
        inside = asm.jump(_JGE_K, first, label, otherwise)
        return asm.jump(_JGT_K, last, otherwise, inside)

    def dispatch(part: list[tuple[int, int, int]]) -> int:
        """A binary search on the syscall number (A holds it) over the runs, so a call costs
        ~log2(n) comparisons and the program stays short (the kernel's load of it, JIT
        included, is on every container's start path: ~0.3 ms for 1,155 instructions)."""
        if len(part) <= 3:
            target = default_label
            for run in reversed(part):
                target = check(run, target)
            return target
        middle = len(part) // 2
        upper = dispatch(part[middle:])
        lower = dispatch(part[:middle])
        return asm.jump(_JGE_K, part[middle][0], upper, lower)

    next_header = dispatch(runs)
    # x32 ABI calls share the x86_64 audit arch; they get the default action
    asm.jump(_JGE_K, _X32_SYSCALL_BIT, default_label, next_header)
    load_nr = asm.stmt(_LD_W_ABS, _OFF_NR)
    kill = asm.ret(SECCOMP_RET_KILL_PROCESS)
    asm.jump(_JEQ_K, AUDIT_ARCH_X86_64, load_nr, kill)
    asm.stmt(_LD_W_ABS, _OFF_ARCH)
    return asm.program()
