"""Docker's default seccomp profile for x86_64, as OCI ``Seccomp`` data.

An allow list: anything not named fails with EPERM. Some syscalls are allowed
only when the container holds the capability that makes them meaningful
(``mount`` with CAP_SYS_ADMIN, ``reboot`` with CAP_SYS_BOOT, ...), so the
profile depends on the container's capability set, exactly as moby builds it
from ``profiles/seccomp/default.json`` (``includes``/``excludes`` on caps).
Entries for other architectures are left out; this daemon targets x86_64.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from dockyard.oci.runtime_spec import Seccomp, SeccompArg, SeccompSyscall

ARCHITECTURES = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]

# Allowed for everyone (the first, unconditional group of moby's profile, plus the
# ptrace family which moby allows unconditionally on kernels >= 4.8).
_ALWAYS_ALLOWED = """
accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2
dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait
epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64
fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchown fchown32 fchownat fcntl fcntl64
fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs
fstatfs64 fsync ftruncate ftruncate64 futex futex_time64 futex_waitv futimesat getcpu getcwd
getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32
getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid getresgid32
getresuid getresuid32 getrlimit get_robust_list getrusage getsid getsockname getsockopt
get_thread_area gettid gettimeofday getuid getuid32 getxattr inotify_add_watch inotify_init
inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents
io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit io_uring_enter io_uring_register
io_uring_setup ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown
lchown32 lgetxattr link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr
lstat lstat64 madvise membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock
mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive
mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv
msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat _newselect open
openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect
poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6
pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recv recvfrom
recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr rename renameat renameat2
restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn
rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity
sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler
sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity sched_setattr
sched_setparam sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid
setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority setregid
setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit
set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32 setxattr shmat
shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask sigreturn socketcall
socketpair splice stat stat64 statfs statfs64 statx symlink symlinkat sync sync_file_range
syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun timer_gettime
timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64
timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink
unlinkat utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
process_vm_readv process_vm_writev ptrace
arch_prctl modify_ldt
""".split()

# Allowed only with the named capability (moby's "includes": {"caps": [...]}).
_ALLOWED_WITH_CAP: list[tuple[str, list[str]]] = [
    ("CAP_DAC_READ_SEARCH", ["open_by_handle_at"]),
    (
        "CAP_SYS_ADMIN",
        "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount mount_setattr "
        "move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname sethostname setns "
        "syslog umount umount2 unshare".split(),
    ),
    ("CAP_SYS_BOOT", ["reboot"]),
    ("CAP_SYS_CHROOT", ["chroot"]),
    ("CAP_SYS_MODULE", ["delete_module", "init_module", "finit_module"]),
    ("CAP_SYS_PACCT", ["acct"]),
    ("CAP_SYS_PTRACE", ["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"]),
    ("CAP_SYS_RAWIO", ["iopl", "ioperm"]),
    ("CAP_SYS_TIME", ["settimeofday", "stime", "clock_settime", "clock_settime64"]),
    ("CAP_SYS_TTY_CONFIG", ["vhangup"]),
    ("CAP_SYS_NICE", ["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"]),
    ("CAP_SYSLOG", ["syslog"]),
    ("CAP_BPF", ["bpf"]),
    ("CAP_PERFMON", ["perf_event_open"]),
]

AF_VSOCK = 40
# Execution domains personality(2) may select: PER_LINUX, PER_LINUX32, UNAME26,
# UNAME26|PER_LINUX32, and 0xffffffff (query).
_PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
# CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET: without CAP_SYS_ADMIN,
# clone may not create namespaces.
CLONE_NAMESPACE_FLAGS = 0x7E020000
ENOSYS = 38
EPERM = 1


def default_seccomp(capabilities: Iterable[str] = ()) -> Seccomp:
    """Docker's default profile for a container holding ``capabilities`` (CAP_* names). Shared:
    made once per capability set (0.3 ms of every container start otherwise); never mutate it."""
    return _default_seccomp(frozenset(capabilities))


@functools.lru_cache(maxsize=32)
def _default_seccomp(caps: frozenset[str]) -> Seccomp:
    rules = [SeccompSyscall(names=list(_ALWAYS_ALLOWED), action="SCMP_ACT_ALLOW")]
    rules.append(
        SeccompSyscall(
            names=["socket"],
            action="SCMP_ACT_ALLOW",
            args=[SeccompArg(index=0, value=AF_VSOCK, op="SCMP_CMP_NE")],
        )
    )
    for persona in _PERSONALITIES:
        rules.append(
            SeccompSyscall(
                names=["personality"],
                action="SCMP_ACT_ALLOW",
                args=[SeccompArg(index=0, value=persona, op="SCMP_CMP_EQ")],
            )
        )
    for cap, names in _ALLOWED_WITH_CAP:
        if cap in caps:
            rules.append(SeccompSyscall(names=list(names), action="SCMP_ACT_ALLOW"))
    if "CAP_SYS_ADMIN" not in caps:
        rules.append(
            SeccompSyscall(
                names=["clone"],
                action="SCMP_ACT_ALLOW",
                args=[SeccompArg(index=0, value=CLONE_NAMESPACE_FLAGS, value_two=0, op="SCMP_CMP_MASKED_EQ")],
            )
        )
        # ENOSYS (not EPERM) so libc falls back to clone(2), which the rule above can inspect.
        rules.append(SeccompSyscall(names=["clone3"], action="SCMP_ACT_ERRNO", errno_ret=ENOSYS))
    return Seccomp(
        default_action="SCMP_ACT_ERRNO",
        default_errno_ret=EPERM,
        architectures=list(ARCHITECTURES),
        syscalls=rules,
    )
