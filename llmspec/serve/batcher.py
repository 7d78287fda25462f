"""The batcher of the served app: requests that arrive while the model is busy are decoded
together in the next batch, on one thread of the replica's own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class Batcher:
    """Gathers calls that arrive while a batch runs into the next one; one batch at a time,
    on a thread of its own, so the event loop keeps taking requests. The model always runs on
    that one thread: torch's thread settings are per calling thread, and a pool of threads
    would each start a team of its own. Its task lives only while there is work: nothing is
    left pending when the loop stops."""

    def __init__(self, fn: Callable[[list[Any]], list[Any]], max_batch: int):
        self.fn = fn
        self.max_batch = max_batch
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="llmspec-serve")
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None

    async def submit(self, item: Any) -> Any:
        loop = asyncio.get_running_loop()
        if self.queue is None or self.task is None or self.task.get_loop() is not loop:
            self.queue, self.task = asyncio.Queue(), None
        fut = loop.create_future()
        self.queue.put_nowait((item, fut))
        if self.task is None or self.task.done():
            self.task = loop.create_task(self._drain(self.queue))
        return await fut

    async def _drain(self, queue: asyncio.Queue) -> None:
        # No await between the emptiness check and returning: a call submitted meanwhile
        # either joins the queue before the check or finds this task done and starts another.
        while not queue.empty():
            batch = [queue.get_nowait()]
            await asyncio.sleep(0)  # requests sent together arrive together
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            live = [(item, fut) for item, fut in batch if not fut.done()]
            if not live:
                continue
            try:
                loop = asyncio.get_running_loop()
                items = [item for item, _ in live]
                results = await loop.run_in_executor(self.thread, self.fn, items)
            except Exception as e:  # noqa: BLE001 - every waiting request gets the failure
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            for (_, fut), r in zip(live, results, strict=True):
                if not fut.done():
                    fut.set_result(r)


def torch_threads(n: int) -> None:
    """Set torch's threads in the calling thread (where the model runs), if torch is here."""
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
