"""Level 1: where the optimizers run, and how the manager talks to them.

- :mod:`.plan`: the execution plan, resolved once before a run starts (Level 1 and each
  entry's Level 2 backend, start methods, thread slice), with :mod:`.auto`'s task probe;
- :mod:`.supervisor`: the manager's side — one wait over every child's channel;
- :mod:`.handles`: one running optimizer as the supervisor sees it (a thread or a process);
- :mod:`.runner`: the child's side — the ask → evaluate → tell loop;
- :mod:`.messages`: what travels between them (small frozen dataclasses);
- :mod:`.turnstile`: fair turns for runner threads whose task holds the GIL.
"""
