"""Wall time for benchmarks that may run on a GPU.

CUDA kernels run asynchronously, so a region is only timed right when the device is
synchronized at both ends; on the CPU the clock is plain ``perf_counter``.
"""

import time

import torch


class Clock:
    def __init__(self, device: str) -> None:
        self._cuda = device == "cuda"

    def now(self) -> float:
        if self._cuda:
            torch.cuda.synchronize()
        return time.perf_counter()
