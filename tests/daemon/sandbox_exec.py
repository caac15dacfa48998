#!/usr/bin/env python3
"""Exec a command under a seccomp filter like the one systemd builds from a unit's
SystemCallFilter= and RestrictAddressFamilies= (used by test_unit.py to run the
daemon with the unit's restrictions where no systemd is running).

Usage: sandbox_exec.py --syscalls FILE [--families N,N...] -- COMMAND [ARG]...
FILE holds the allowed system call names, one per line; every other call fails
with EPERM (SystemCallErrorNumber=EPERM). With --families, socket() succeeds only
for those address family numbers (others fail with EPERM; systemd's
RestrictAddressFamilies= answers EAFNOSUPPORT). Standard library only (ctypes over libseccomp).
"""
import ctypes
import ctypes.util
import errno
import os
import sys

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_EQ = 4


def SCMP_ACT_ERRNO(e):
    return 0x00050000 | (e & 0xFFFF)


class ScmpArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def main(argv):
    syscalls, families = None, None
    i = 1
    while i < len(argv) and argv[i] != "--":
        if argv[i] == "--syscalls":
            syscalls = argv[i + 1]
            i += 2
        elif argv[i] == "--families":
            families = [int(x) for x in argv[i + 1].split(",") if x]
            i += 2
        else:
            sys.exit(f"sandbox_exec: unknown option {argv[i]}")
    cmd = argv[i + 1:]
    if not syscalls or not cmd:
        sys.exit(__doc__)
    lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(ScmpArgCmp)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(SCMP_ACT_ERRNO(errno.EPERM))
    if not ctx:
        sys.exit("sandbox_exec: seccomp_init failed")
    with open(syscalls) as f:
        names = {l.strip() for l in f if l.strip() and not l.startswith("#")}
    socket_nr = lib.seccomp_syscall_resolve_name(b"socket")
    for name in sorted(names):
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr < 0 or (families is not None and nr == socket_nr):
            continue  # not on this architecture; socket() is handled below
        if lib.seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, 0, None) < 0:
            sys.exit(f"sandbox_exec: cannot allow {name}")
    if families is not None and "socket" in names:
        for fam in families:
            cmp = ScmpArgCmp(0, SCMP_CMP_EQ, fam, 0)
            if lib.seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, socket_nr, 1, ctypes.byref(cmp)) < 0:
                sys.exit("sandbox_exec: cannot add the socket() rule")
        # Other families fall to the default action, EPERM (systemd answers
        # EAFNOSUPPORT; libseccomp cannot AND two conditions on one argument).
    if lib.seccomp_load(ctx) < 0:
        sys.exit("sandbox_exec: seccomp_load failed")
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main(sys.argv)
