"""Power-cut simulation around the durashim LD_PRELOAD layer (durashim.c, README.md).

A program runs with the shim watching a directory ROOT; the shim keeps, in a shadow
directory, what a power cut would leave of ROOT. `cut` kills the program (SIGKILL: the
page cache survives, as it would not in a real power cut) and replaces ROOT with that
durable state, optionally with torn writes: some of the non-durable pages that the disk
might have written anyway.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

SOURCE = Path(__file__).resolve().with_name("durashim.c")

PAGE = 4096
SECTOR = 512
# Files are compared in blocks this large first, pages only inside blocks that differ.
BLOCK = 1 << 20
FS_IOC_GETVERSION = 0x80087601  # _IOR('v', 1, long)


class ShimError(RuntimeError):
    """The shim could not keep its model; no restore is trustworthy."""


def build_shim(out_dir: Path) -> Path:
    """Compiles durashim.so into out_dir, unless an up-to-date build is already there
    (one build per pytest session when out_dir is under the session's base temp)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    so = out_dir / "durashim.so"
    if so.exists() and so.stat().st_mtime >= SOURCE.stat().st_mtime:
        return so
    tmp = out_dir / f"durashim.so.{os.getpid()}"
    cmd = ["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o", str(tmp), str(SOURCE),
           "-ldl", "-lpthread"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"building the shim failed:\n{' '.join(cmd)}\n{p.stderr}")
    tmp.replace(so)
    return so


def shim_env(so: Path, root: Path, shadow: Path, base: dict | None = None) -> dict:
    """The environment that runs a program under the shim (LD_PRELOAD first in line)."""
    env = dict(os.environ if base is None else base)
    env["LD_PRELOAD"] = f"{so} {env['LD_PRELOAD']}" if env.get("LD_PRELOAD") else str(so)
    env["DURASHIM_ROOT"] = str(Path(root).resolve())
    env["DURASHIM_SHADOW"] = str(Path(shadow).resolve())
    return env


def prepare(root: Path, shadow: Path) -> None:
    """Creates ROOT and an empty shadow: the next process under the shim takes ROOT as it
    is now as durable."""
    root, shadow = Path(root).resolve(), Path(shadow).resolve()
    if shadow == root or root in shadow.parents:
        raise ValueError("the shadow directory must be outside ROOT")
    root.mkdir(parents=True, exist_ok=True)
    if shadow.exists():
        shutil.rmtree(shadow)
    shadow.mkdir(parents=True)


def launch(cmd: list, so: Path, root: Path, shadow: Path, env: dict | None = None,
           **popen_kwargs) -> subprocess.Popen:
    """Starts cmd under the shim, on a fresh shadow (ROOT as it is is the durable state)."""
    prepare(root, shadow)
    return subprocess.Popen(cmd, env=shim_env(so, root, shadow, env), **popen_kwargs)


def file_key(path: Path, st: os.stat_result | None = None) -> str:
    """The shim's key of a file or directory: inode and generation ("<ino>-x" without)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        try:
            gen = struct.unpack("<I", fcntl.ioctl(fd, FS_IOC_GETVERSION, bytes(8))[:4])[0]
        except OSError:
            return f"{st.st_ino}-x"
        return f"{st.st_ino}-{gen}"
    finally:
        os.close(fd)


@dataclass
class Entry:
    kind: str  # "f", "d" or "l"
    mode: int
    key: str
    name: str
    target: str


def read_manifest(path: Path) -> list:
    """Entries of a directory manifest (durashim.c, write_manifest); none if it is absent:
    a directory never fsynced has no durable entry."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    fields = raw.split(b"\0")
    if len(fields) % 3 != 1 or fields[-1] != b"":
        raise ShimError(f"malformed manifest {path}")
    entries = []
    for i in range(0, len(fields) - 1, 3):
        kind, mode, key = fields[i].decode().split(" ")
        entries.append(Entry(kind, int(mode, 8), key, os.fsdecode(fields[i + 1]),
                             os.fsdecode(fields[i + 2])))
    return entries


@dataclass
class CutReport:
    """What one cut did, for the test logs."""

    files_restored: int = 0
    dirs_restored: int = 0
    files_lost: list = field(default_factory=list)  # paths (relative to ROOT)
    dirs_lost: list = field(default_factory=list)
    files_rolled_back: int = 0  # restored with content other than the real one
    pages_torn: int = 0  # non-durable pages kept (wholly or in part)
    pages_dropped: int = 0  # non-durable pages that went back to the durable content
    sectors_partial: int = 0  # pages of which only a prefix of sectors was kept
    anomalies: list = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.files_restored} files and {self.dirs_restored} dirs restored, "
                f"{len(self.files_lost)} files and {len(self.dirs_lost)} dirs lost, "
                f"{self.files_rolled_back} files rolled back, {self.pages_torn} pages torn in "
                f"({self.sectors_partial} partly), {self.pages_dropped} dropped")


def cut(proc, root: Path, shadow: Path, rng, torn: bool = True) -> CutReport:
    """Power cut: SIGKILLs proc (a Popen, or None if nothing runs), waits for it, and
    replaces ROOT's content with what was durable, plus torn pages when torn. The shadow
    is emptied, so the next process under the shim starts from the restored state."""
    if proc is not None:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    root, shadow = Path(root).resolve(), Path(shadow).resolve()
    errors = shadow / "errors"
    if errors.exists():
        raise ShimError(f"the shim could not keep its model:\n{errors.read_text()}")
    if not (shadow / "initialised").exists():
        raise ShimError(f"no process initialised the shadow {shadow}")
    report = _restore(root, shadow, rng, torn)
    shutil.rmtree(shadow)
    shadow.mkdir()
    return report


def _scan_real(root: Path):
    """The page-cache state of ROOT: files by key, and every path (relative) with its type."""
    files, paths = {}, {}
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        for name in dirnames:
            paths[(d / name).relative_to(root)] = "o" if (d / name).is_symlink() else "d"
        for name in filenames:
            p = d / name
            if p.is_symlink() or not p.is_file():
                paths[p.relative_to(root)] = "o"
                continue
            paths[p.relative_to(root)] = "f"
            files.setdefault(file_key(p), p)
    return files, paths


def _restore(root: Path, shadow: Path, rng, torn: bool) -> CutReport:
    report = CutReport()
    real_files, real_paths = _scan_real(root)
    staging = root.with_name(root.name + ".powercut-restore")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    made = {}  # key -> staged path, so that hard links stay hard links
    restored_paths = set()

    def build(dir_key: str, dest: Path, ancestors: frozenset) -> None:
        for e in read_manifest(shadow / "dirs" / dir_key):
            path = dest / e.name
            rel = path.relative_to(staging)
            if e.kind == "d":
                # Stale manifests can list one directory under two parents, or inside
                # itself (renames not made durable on both sides); a real file system
                # cannot: the first occurrence wins.
                if e.key in ancestors or e.key in made:
                    report.anomalies.append(f"directory {rel} listed twice; left out")
                    continue
                path.mkdir()
                made[e.key] = path
                build(e.key, path, ancestors | {e.key})
                os.chmod(path, e.mode)
                report.dirs_restored += 1
            elif e.kind == "f":
                if e.key in made:
                    os.link(made[e.key], path)
                else:
                    data, rolled_back = _content(shadow / "files" / e.key,
                                                 real_files.get(e.key), rng, torn, report)
                    path.write_bytes(data)
                    os.chmod(path, e.mode)
                    made[e.key] = path
                    report.files_rolled_back += rolled_back
                report.files_restored += 1
            elif e.kind == "l":
                os.symlink(e.target, path)
            restored_paths.add(rel)

    build((shadow / "root").read_text().strip(), staging, frozenset())
    for rel, kind in sorted(real_paths.items()):
        if rel not in restored_paths:
            (report.dirs_lost if kind == "d" else report.files_lost).append(str(rel))
    # Only ROOT's content is replaced: ROOT itself is taken as durable.
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    for child in staging.iterdir():
        child.rename(root / child.name)
    staging.rmdir()
    return report


def _content(durable_path: Path, real_path, rng, torn: bool, report: CutReport):
    """The post-cut content of one file: the durable content, plus, when torn, each
    4 KiB page where the real (page cache) content differs kept with probability 1/2,
    and of one kept page in eight only a prefix of its 512-byte sectors. Pages past the
    durable length count too; the length then reaches the end of the last kept piece
    (never past the real length), holes in between reading as zeros. A real file shorter
    than the durable one keeps the durable length: the shrink was not made durable."""
    durable = durable_path.read_bytes() if durable_path.exists() else b""
    if real_path is None:
        return durable, 0
    real = real_path.read_bytes()
    if real == durable:
        return durable, 0
    if not torn:
        return durable, 1
    out = bytearray(durable)
    end = len(durable)
    for block in range(0, len(real), BLOCK):
        if real[block:block + BLOCK] == durable[block:block + BLOCK]:
            continue
        for page in range(block, min(block + BLOCK, len(real)), PAGE):
            new = real[page:page + PAGE]
            if new == durable[page:page + PAGE]:
                continue
            if rng.random() < 0.5:
                report.pages_dropped += 1
                continue
            if rng.random() < 0.125:
                new = new[:SECTOR * rng.randint(1, PAGE // SECTOR - 1)]
                report.sectors_partial += 1
            report.pages_torn += 1
            if page + len(new) > len(out):
                out.extend(bytes(page + len(new) - len(out)))
            out[page:page + len(new)] = new
            end = max(end, page + len(new))
    del out[end:]
    return bytes(out), int(bytes(out) != real)
