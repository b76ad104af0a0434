"""Self-tests of the power-cut harness (powercut/): a small Python program runs a script
of file operations under the shim, reports that it is done, and is cut. Each test checks
one rule of the durability model (powercut/README.md)."""

import json
import random
import subprocess
import sys

import pytest

from powercut import powercut as pc

# The program under test: runs the operations given as JSON in argv[1] with ROOT as its
# working directory, prints one JSON line (inode numbers it was asked for), then waits
# on stdin until it is killed.
CHILD = r"""
import ctypes, json, os, sys

libc = ctypes.CDLL(None, use_errno=True)
libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
SYNC_FILE_RANGE_ALL = 1 | 2 | 4  # WAIT_BEFORE | WRITE | WAIT_AFTER, as sled calls it
FLAGS = {"w": os.O_WRONLY, "c": os.O_CREAT, "t": os.O_TRUNC, "a": os.O_APPEND}

def data(d):
    return d.encode() if isinstance(d, str) else bytes([d[1]]) * d[2]  # ["fill", byte, n]

fds, out = {}, {}
for op, *a in json.loads(sys.argv[1]):
    if op == "open":
        flags = 0
        for c in a[2]:
            flags |= FLAGS[c]
        fds[a[0]] = os.open(a[1], flags, 0o644)
    elif op == "write":
        os.write(fds[a[0]], data(a[1]))
    elif op == "pwrite":
        os.pwrite(fds[a[0]], data(a[2]), a[1])
    elif op == "writev":
        os.writev(fds[a[0]], [data(d) for d in a[1]])
    elif op == "ftruncate":
        os.ftruncate(fds[a[0]], a[1])
    elif op == "fsync":
        os.fsync(fds[a[0]])
    elif op == "fdatasync":
        os.fdatasync(fds[a[0]])
    elif op == "sync_file_range":
        if libc.sync_file_range(fds[a[0]], 0, 0, SYNC_FILE_RANGE_ALL) != 0:
            raise OSError(ctypes.get_errno(), "sync_file_range")
    elif op == "close":
        os.close(fds.pop(a[0]))
    elif op == "fsyncdir":
        fd = os.open(a[0], os.O_RDONLY | os.O_DIRECTORY)
        os.fsync(fd)
        os.close(fd)
    elif op == "mkdir":
        os.mkdir(a[0])
    elif op == "rename":
        os.rename(a[0], a[1])
    elif op == "unlink":
        os.unlink(a[0])
    elif op == "ino":
        out[a[0]] = os.stat(a[0]).st_ino
    elif op == "reuse":  # create a[1]0, a[1]1, ... until one gets inode number out[a[2]]
        for i in range(100):
            fd = os.open(f"{a[1]}{i}", os.O_WRONLY | os.O_CREAT, 0o644)
            if os.fstat(fd).st_ino == out[a[2]]:
                fds[a[0]], out["reused"] = fd, f"{a[1]}{i}"
                break
            os.close(fd)
    else:
        raise ValueError(op)
print(json.dumps(out), flush=True)
sys.stdin.read()
"""


@pytest.fixture(scope="session")
def shim(tmp_path_factory):
    return pc.build_shim(tmp_path_factory.getbasetemp() / "durashim")


@pytest.fixture
def disk(tmp_path):
    root, shadow = tmp_path / "root", tmp_path / "shadow"
    root.mkdir()
    return root, shadow


def run(shim, disk, ops, rng=None, torn=False):
    """Runs ops under the shim, cuts once they are done; returns (report, child output)."""
    root, shadow = disk
    proc = pc.launch([sys.executable, "-c", CHILD, json.dumps(ops)], shim, root, shadow,
                     cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line, f"the child failed (status {proc.wait()})"
    finally:
        report = pc.cut(proc, root, shadow, rng or random.Random(0), torn=torn)
        proc.stdin.close()
        proc.stdout.close()
    return report, json.loads(line)


def test_unsynced_write_is_lost(shim, disk):
    root, _ = disk
    (root / "f").write_text("durable")
    report, _ = run(shim, disk, [["open", "f", "f", "w"], ["pwrite", "f", 0, "changed"]])
    assert (root / "f").read_text() == "durable"
    assert report.files_rolled_back == 1


def test_fsync_makes_every_kind_of_write_durable(shim, disk):
    root, _ = disk
    (root / "f").write_text("0123456789")
    run(shim, disk, [["open", "f", "f", "w"], ["write", "f", "ab"], ["writev", "f", ["c", "d"]],
                     ["pwrite", "f", 6, "XY"], ["fsync", "f"]])
    assert (root / "f").read_text() == "abcd45XY89"


def test_fsync_after_shrinking_and_growing_keeps_the_zeros(shim, disk):
    root, _ = disk
    (root / "f").write_text("0123456789")
    run(shim, disk, [["open", "f", "f", "w"], ["ftruncate", "f", 4], ["ftruncate", "f", 8],
                     ["fsync", "f"]])
    assert (root / "f").read_bytes() == b"0123" + bytes(4)


def test_sync_file_range_makes_nothing_durable(shim, disk):
    root, _ = disk
    (root / "f").write_text("durable")
    run(shim, disk, [["open", "f", "f", "w"], ["pwrite", "f", 0, "changed"],
                     ["sync_file_range", "f"]])
    assert (root / "f").read_text() == "durable"


def test_unsynced_truncation_is_lost(shim, disk):
    root, _ = disk
    (root / "f").write_text("durable")
    run(shim, disk, [["open", "f", "f", "wt"], ["write", "f", "x"]])
    assert (root / "f").read_text() == "durable"


def test_fsynced_file_in_never_fsynced_new_directory_is_lost(shim, disk):
    root, _ = disk
    report, _ = run(shim, disk, [
        ["mkdir", "d"], ["open", "f", "d/f", "wc"], ["write", "f", "data"], ["fsync", "f"],
        ["fsyncdir", "d"],  # d's own entry in ROOT is still not durable
    ])
    assert not (root / "d").exists()
    assert report.dirs_lost == ["d"] and report.files_lost == ["d/f"]


def test_file_fsync_and_directory_fsync_keep_it(shim, disk):
    root, _ = disk
    run(shim, disk, [["open", "f", "f", "wc"], ["write", "f", "hello"], ["fsync", "f"],
                     ["fsyncdir", "."]])
    assert (root / "f").read_text() == "hello"


def test_durable_entry_without_fsynced_data_is_empty(shim, disk):
    root, _ = disk
    run(shim, disk, [["open", "f", "f", "wc"], ["write", "f", "hello"], ["fsyncdir", "."]])
    assert (root / "f").read_bytes() == b""


def test_rename_is_not_durable_until_directory_fsync(shim, disk):
    root, _ = disk
    (root / "old").write_text("content")
    run(shim, disk, [["rename", "old", "new"]])
    assert (root / "old").read_text() == "content"
    assert not (root / "new").exists()


def test_rename_then_directory_fsync_is_durable(shim, disk):
    root, _ = disk
    (root / "old").write_text("content")
    run(shim, disk, [["rename", "old", "new"], ["fsyncdir", "."]])
    assert (root / "new").read_text() == "content"
    assert not (root / "old").exists()


def test_fdatasync_keeps_a_grown_length(shim, disk):
    root, _ = disk
    (root / "f").write_bytes(b"0123456789")
    run(shim, disk, [["open", "f", "f", "w"], ["pwrite", "f", 10, ["fill", 7, 5000]],
                     ["fdatasync", "f"]])
    assert (root / "f").read_bytes() == b"0123456789" + bytes([7]) * 5000


def test_torn_writes_keep_a_subset_of_unsynced_pages(shim, disk):
    root, _ = disk
    pages = 64
    kept = dropped = 0
    for seed in range(3):
        (root / "f").write_bytes(bytes(pc.PAGE * pages))
        report, _ = run(shim, disk, [["open", "f", "f", "w"],
                                     ["pwrite", "f", 0, ["fill", 0xFF, pc.PAGE * pages]]],
                        rng=random.Random(seed), torn=True)
        data = (root / "f").read_bytes()
        assert len(data) == pc.PAGE * pages
        for i in range(pages):
            page = data[i * pc.PAGE:(i + 1) * pc.PAGE]
            new = len(page) - len(page.lstrip(b"\xff"))
            # A page is old, new, or new in a prefix of whole sectors.
            assert new % pc.SECTOR == 0 and page[new:] == bytes(pc.PAGE - new), (seed, i)
            kept += new > 0
            dropped += new == 0
        assert report.pages_torn + report.pages_dropped == pages
    assert kept > 0 and dropped > 0


def test_torn_writes_past_the_durable_length_end_at_the_last_kept_page(shim, disk):
    root, _ = disk
    lengths = set()
    for seed in range(4):
        (root / "f").write_bytes(b"d" * pc.PAGE)
        run(shim, disk, [["open", "f", "f", "wa"], ["write", "f", ["fill", 0xFF, 8 * pc.PAGE]]],
            rng=random.Random(seed), torn=True)
        data = (root / "f").read_bytes()
        assert data[:pc.PAGE] == b"d" * pc.PAGE
        assert len(data) == pc.PAGE or data[-1] == 0xFF  # ends with kept data, not a hole
        assert set(data[pc.PAGE:]) <= {0, 0xFF}
        lengths.add(len(data))
    assert len(lengths) > 1


def test_inode_reuse_does_not_mix_up_contents(shim, disk):
    root, _ = disk
    report, out = run(shim, disk, [
        ["open", "a", "a", "wc"], ["write", "a", "A" * 100], ["fsync", "a"], ["ino", "a"],
        ["close", "a"], ["fsyncdir", "."],
        ["unlink", "a"],  # not durable: a comes back
        ["reuse", "b", "b", "a"], ["write", "b", "B" * 50], ["fsync", "b"],
    ])
    if "reused" not in out:
        pytest.skip("the file system did not reuse the inode number")
    assert (root / "a").read_text() == "A" * 100
    assert sorted(p.name for p in root.iterdir()) == ["a"]
    assert out["reused"] in report.files_lost
