"""A progress bar for long work (tqdm), on stderr and only when stderr is a terminal:
piped or redirected, a command prints its report and warnings alone.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def shown() -> bool:
    """Whether a bar would show: stderr is a terminal."""
    return sys.stderr.isatty()


def bar(what: str, total: int | None, unit: str) -> tqdm[Any]:
    """A bar of ``total`` ``unit``s (None: a count without a bar) that is gone when closed,
    the command's report taking its place."""
    return tqdm(
        total=total,
        desc=what,
        unit=f" {unit}",
        file=sys.stderr,
        disable=not shown(),
        leave=False,
        dynamic_ncols=True,
    )


def advance_to(progress: tqdm[Any], done: int) -> None:
    """Move the bar to ``done`` (a count from the start, not an increment)."""
    if done > progress.n:
        progress.update(done - progress.n)


def counted(items: Iterable[T], progress: tqdm[Any]) -> Iterator[T]:
    """``items``, the bar moved on by one for each."""
    for item in items:
        yield item
        progress.update()
