"""hoirecon.runtime: the CPU settings every entry point applies first."""

import subprocess
import sys

import pytest
import torch

from hoirecon.runtime import configure_cpu, keep_freed_memory

# Bytes glibc serves by mmap (mallinfo2's hblkhd) while a fresh process holds a 20 MB tensor: by
# default a block that size is mapped afresh (and unmapped when freed); kept, it comes from the heap.
_MAPPED = """
import ctypes, sys, torch
from hoirecon.runtime import keep_freed_memory
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "keep":
    assert keep_freed_memory()
x = torch.ones(5 << 20)
print(libc.mallinfo2().hblkhd)
"""


def test_configure_cpu_flushes_subnormals_and_sets_threads():
    threads = torch.get_num_threads()
    configure_cpu(1)
    try:
        assert torch.get_num_threads() == 1
        assert torch.tensor([1e-39]).mul(1.0).item() == 0.0  # a subnormal float32 input reads as zero
    finally:
        configure_cpu(threads)


@pytest.mark.slow  # two fresh processes importing torch
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")
def test_kept_memory_comes_from_the_heap_not_fresh_mappings():
    if not keep_freed_memory():
        pytest.skip("not glibc")
    mapped = {}
    for mode in ("default", "keep"):
        out = subprocess.run([sys.executable, "-c", _MAPPED, mode], capture_output=True, text=True, check=True)
        mapped[mode] = int(out.stdout.split()[-1])
    assert mapped["default"] >= 20 << 20 and mapped["keep"] < 20 << 20, mapped
