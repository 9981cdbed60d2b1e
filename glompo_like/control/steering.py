"""Files a user drops into the working directory to steer a running manager.

- ``STOP``: end the run cleanly (summary and, if configured, a checkpoint are written).
- ``STOP_<opt_id>``: stop that optimizer (its slot is refilled as usual).
- ``CHKPT``: write a checkpoint now (needs ``checkpoint_control``).
- ``STOP_STUDY``: end the whole study this manager works on (every manager of it ends at
  its next sync); without a study, the same as ``STOP``.

Each file is removed once acted on.  The manager looks at the directory every
:data:`LOOK_EVERY` seconds (a deadline of its event loop), so it costs nothing measurable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SteeringFiles", "Requests", "LOOK_EVERY"]

#: seconds between two looks at the working directory
LOOK_EVERY = 1.0

_STOP_ONE = re.compile(r"^STOP_(\d+)$")


@dataclass
class Requests:
    stop_run: bool = False
    stop_optimizers: list[int] = field(default_factory=list)
    checkpoint: bool = False
    stop_study: bool = False

    def __bool__(self) -> bool:
        return self.stop_run or self.checkpoint or self.stop_study or bool(self.stop_optimizers)


class SteeringFiles:
    """The steering files of one working directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def look(self) -> Requests:
        """Return (and consume) the requests dropped since the last look."""
        req = Requests()
        try:
            names = [p.name for p in self.directory.iterdir() if p.name.startswith(("STOP", "CHKPT"))]
        except OSError:
            return req
        for name in names:
            m = _STOP_ONE.match(name)
            if name == "STOP":
                req.stop_run = True
            elif name == "STOP_STUDY":
                req.stop_study = True
            elif name == "CHKPT":
                req.checkpoint = True
            elif m:
                req.stop_optimizers.append(int(m.group(1)))
            else:
                continue
            (self.directory / name).unlink(missing_ok=True)
        return req
