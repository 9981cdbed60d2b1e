"""Child-process hygiene, shared by both levels of parallelism.

- :mod:`.hygiene`: what every child process does first (watch its parent, own its process
  group, turn SIGTERM into killing that group) and the group kill itself;
- :mod:`.terminate`: the one termination escalation (ask → grace → SIGTERM → SIGKILL) and
  the sweep of a whole process tree at shutdown;
- :mod:`.start`: how Level 2 worker processes start (forkserver by default);
- :mod:`.pipes`: a cheap "is a message waiting?" for pipes.
"""
