"""Run independent tasks on a Dask cluster and hand each result back as it completes."""

from __future__ import annotations

from typing import Callable, Iterable

SCHEDULER_TIMEOUT = 30.0  # s to wait for a Dask scheduler to answer


def dask_map(scheduler, fn: Callable, tasks: Iterable[tuple[int, tuple]], *, key: str,
             record: Callable[[int, object], None]) -> None:
    """Submit ``fn(*args)`` for each ``(i, args)`` of ``tasks``; call ``record(i, result)`` as each
    finishes (in completion order). ``scheduler`` is an address (``tcp://host:8786``) or a
    ``distributed.Client``; a client made here is closed at the end. On any error the remaining
    tasks are cancelled and the error propagates.
    """
    from distributed import Client, as_completed

    if isinstance(scheduler, Client):
        client, own = scheduler, False
    else:
        try:
            client, own = Client(scheduler, timeout=SCHEDULER_TIMEOUT), True
        except (OSError, TimeoutError, ValueError) as err:
            raise OSError(f"cannot connect to the Dask scheduler at {scheduler!r}: {err}") from err
    futures = {}
    try:
        for i, args in tasks:
            future = client.submit(fn, *args, key=f"{key}-{i:05d}", pure=False)
            futures[future.key] = (i, future)
        for future in as_completed([f for _, f in futures.values()]):
            i, _ = futures.pop(future.key)
            record(i, future.result())
            future.release()
    except BaseException:
        client.cancel([f for _, f in futures.values()])
        raise
    finally:
        if own:
            client.close()
