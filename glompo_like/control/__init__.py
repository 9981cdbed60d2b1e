"""The manager's helpers for steering a run, each owning one thing.

- :mod:`.flow`: flow control — how far each optimizer may run ahead of the manager;
- :mod:`.deadlines`: the one heap of deadlines the event loop asks for its next wake-up;
- :mod:`.signals`: SIGTERM and Ctrl-C while a run goes and while it stops;
- :mod:`.steering`: ``STOP``, ``STOP_<id>`` and ``CHKPT`` files in the working directory;
- :mod:`.checkpointer`: taking, writing and restoring checkpoints;
- :mod:`.callbacks`: the user's callbacks, called safely, and their requests to stop.
"""
