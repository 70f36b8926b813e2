"""Runs PoC work for the gRPC service beside inference, one forward pass at a time.

PoC runs on its own thread (one thread: requests take turns chunk by chunk), never on the
event loop and never inside the engine's scheduler, so Generate and Score are not queued
behind a long sprint: the scheduler thread keeps stepping while a PoC chunk runs, and the two
share the device. Each chunk is one forward pass of `batch_size` nonces (milliseconds on a
GPU, well under a second for the tiny preset on a CPU). Between chunks, while the engine
reports queued or running requests, the runner pauses for as long as its last chunk took, so
inference gets at least half of the device's time during a sprint; an idle engine lets PoC
run flat out. The model of the last (spec, seed, dtype) is kept, since a prover streams many
requests of one seed and generating realistic weights takes seconds.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from mlnode.poc.model import DTYPES, PocModel
from mlnode.poc.nonces import Screen, compute_batches, reference_screen
from mlnode.poc.verify import verify
from mlnode.types import PocModelSpec, PocNonce, VerifyReport

T = TypeVar("T")


class PocRunner:
    def __init__(self, device: str, busy: Callable[[], bool]) -> None:
        """`busy` says whether inference is waiting or running (the engine's load)."""
        self._device = device
        self._busy = busy
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlnode-poc")
        self._model: PocModel | None = None
        self._screen: tuple[PocModel, Screen] | None = None  # the held model's, once built

    def _model_for(self, spec: PocModelSpec, seed: bytes, dtype: str) -> PocModel:
        held = self._model
        if held is None or (held.spec, held.seed, held.dtype) != (spec, seed, DTYPES[dtype]):
            del held
            self._model = self._screen = None  # let the old weights go before new ones come
            self._model = PocModel(spec, seed, self._device, dtype)
        return self._model

    def _screen_for(self, model: PocModel) -> Screen:
        """The reference screen of ``model``, kept while it is the held one (on a GPU it
        holds a bfloat16 copy of the weights). Requests of other seeds may have replaced the
        held model since ``model`` was fetched (a prover's request and a check of another's
        nonces take turns on the thread): a screen is only ever handed out for its own
        model, else one prover would screen with another's weights and throw out nearly
        every nonce it computed."""
        if self._screen is not None and self._screen[0] is model:
            return self._screen[1]
        screen = reference_screen(model)
        if model is self._model:
            self._screen = (model, screen)
        return screen

    async def _on_thread(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def prove(self, spec: PocModelSpec, seed: bytes, nonces: Sequence[int],
                    target_distance: float, batch_size: int | None, dtype: str,
                    exhaustive: bool = False) -> AsyncIterator[tuple[int, list[PocNonce]]]:
        """Per chunk: nonces computed (screened or in full) and those accepted; through the
        reference screen unless `exhaustive`. Stopping iteration (a client that hangs up)
        stops the work after the chunk in flight."""
        model = await self._on_thread(self._model_for, spec, seed, dtype)
        screen = None if exhaustive else await self._on_thread(self._screen_for, model)
        batches: Iterator[tuple[int, list[PocNonce]]] = compute_batches(
            model, nonces, target_distance, batch_size, screen)
        while True:
            start = time.monotonic()
            item = await self._on_thread(next, batches, None)
            if item is None:
                return
            yield item
            if self._busy():
                await asyncio.sleep(time.monotonic() - start)

    async def verify(self, spec: PocModelSpec, seed: bytes, claimed: Sequence[PocNonce],
                     target_distance: float, sample_size: int, sample_seed: bytes,
                     tolerance: float) -> VerifyReport:
        """One job: a sample is a few forward passes (100 realistic claims: ~0.35 s in bf16
        on an H200), short enough not to chunk."""
        def run() -> VerifyReport:
            model = self._model_for(spec, seed, "float32")
            return verify(model, claimed, target_distance, sample_size, sample_seed, tolerance)

        return await self._on_thread(run)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
