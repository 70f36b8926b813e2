"""The n choices of one OpenAI request, each its own inference, served side by side.

A request with ``n`` > 1 becomes n inferences (docs/design.md §3.1): each drawn, started,
settled and validated on its own. The endpoint starts them together and, when streaming,
interleaves their events as they come, tagged with the choice index OpenAI puts on each
chunk.
"""

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Sequence

from apinode.execute_wire import Executed, ExecutedStep
from apinode.transfer_agent import Event, Prepared, TransferAgent

Served = tuple[str, AsyncGenerator[Event]]


async def serve_choices(agent: TransferAgent, prepared: Prepared) -> list[Served]:
    """Every choice's inference id and stream, index order. When one cannot be served, the
    others are closed (cancelling their generations) and its error is raised."""
    outcomes = await asyncio.gather(
        *(agent.serve(prepared, choice) for choice in range(prepared.request.n)),
        return_exceptions=True)
    failure = next((o for o in outcomes if isinstance(o, BaseException)), None)
    if failure is None:
        return list(outcomes)
    for outcome in outcomes:
        if not isinstance(outcome, BaseException):
            await outcome[1].aclose()
    raise failure


async def merged(streams: Sequence[AsyncGenerator[Event]]
                 ) -> AsyncIterator[tuple[int, ExecutedStep | Executed | Exception]]:
    """(choice index, event) from all streams as they come; a stream that breaks off yields
    its error in place of an event. Closing this cancels whatever still runs."""
    queue: asyncio.Queue[tuple[int, ExecutedStep | Executed | Exception]] = asyncio.Queue()

    async def pump(index: int, stream: AsyncGenerator[Event]) -> None:
        async with contextlib.aclosing(stream):
            try:
                async for item in stream:
                    await queue.put((index, item))
            except Exception as exc:  # the consumer decides what a broken stream means
                await queue.put((index, exc))

    tasks = [asyncio.ensure_future(pump(i, s)) for i, s in enumerate(streams)]
    try:
        while any(not t.done() for t in tasks) or not queue.empty():
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait([getter, *(t for t in tasks if not t.done())],
                               return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield getter.result()
            else:
                getter.cancel()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
