"""Real full filesystems for the tests of writes that fail: a device that is always full, and a
small tmpfs filled to the last byte. Everything made here is removed when the test case ends."""
import os
import shutil
import stat
import subprocess
import tempfile
import unittest


def full_device(case):
    """A path whose every write fails with ENOSPC. As root, a private node of the full device
    (char 1:7) in a temporary folder, so that a program that wrongly renamed something over it
    could not touch the system's /dev/full; else /dev/full itself."""
    if os.geteuid() == 0:
        d = tempfile.mkdtemp(prefix="st-fulldev-")
        case.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "full")
        try:
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 7))
            return path
        except OSError:
            pass
    if not os.path.exists("/dev/full"):
        raise unittest.SkipTest("no /dev/full on this system")
    return "/dev/full"


def small_tmpfs(case, size_kib=256):
    """Mounts a tmpfs of size_kib KiB on a temporary folder and returns the folder; unmounted when
    the test ends. Skips the test when it cannot mount (needs root; CI runs the suite as root)."""
    if os.geteuid() != 0:
        raise unittest.SkipTest("mounting a small tmpfs to fill needs root (CI runs as root)")
    d = tempfile.mkdtemp(prefix="st-tmpfs-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dk,mode=0755" % size_kib, "tmpfs", d],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
    if r.returncode != 0:
        os.rmdir(d)
        raise unittest.SkipTest("cannot mount a tmpfs: %s" % r.stdout.decode(errors="replace"))
    case.addCleanup(os.rmdir, d)
    case.addCleanup(subprocess.run, ["umount", "-l", d], timeout=10)
    return d


def fill(folder):
    """Fills the filesystem of folder until a write fails with ENOSPC; returns the filler's path."""
    path = os.path.join(folder, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    chunk = b"\0" * 4096
    try:
        while True:
            try:
                os.write(fd, chunk)
            except OSError as e:
                if e.errno != 28:
                    raise
                break
        # The last partial page too.
        while True:
            try:
                if os.write(fd, b"\0") == 0:
                    break
            except OSError as e:
                if e.errno != 28:
                    raise
                break
    finally:
        os.close(fd)
    return path
