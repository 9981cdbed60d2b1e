"""Files a user drops into the working directory to steer a running manager.

- ``STOP``: end the run cleanly (summary and, if configured, a checkpoint are written).
- ``STOP_<opt_id>``: stop that optimizer (its slot is refilled as usual).
- ``CHKPT``: write a checkpoint now (needs ``checkpoint_control``).

Each file is removed once acted on.  The directory is looked at no more than once per
``period`` seconds, so it costs nothing measurable.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Interventions", "Requests"]

_STOP_ONE = re.compile(r"^STOP_(\d+)$")


@dataclass
class Requests:
    stop_run: bool = False
    stop_optimizers: list[int] = field(default_factory=list)
    checkpoint: bool = False

    def __bool__(self) -> bool:
        return self.stop_run or self.checkpoint or bool(self.stop_optimizers)


class Interventions:
    def __init__(self, directory: Path, period: float = 1.0) -> None:
        self.directory = directory
        self.period = period
        self.next_look = 0.0

    def seconds_to_next_look(self) -> float:
        return max(0.0, self.next_look - time.monotonic())

    def look(self) -> Requests:
        """Return (and consume) the requests dropped since the last look."""
        req = Requests()
        now = time.monotonic()
        if now < self.next_look:
            return req
        self.next_look = now + self.period
        try:
            names = [p.name for p in self.directory.iterdir() if p.name.startswith(("STOP", "CHKPT"))]
        except OSError:
            return req
        for name in names:
            m = _STOP_ONE.match(name)
            if name == "STOP":
                req.stop_run = True
            elif name == "CHKPT":
                req.checkpoint = True
            elif m:
                req.stop_optimizers.append(int(m.group(1)))
            else:
                continue
            (self.directory / name).unlink(missing_ok=True)
        return req
