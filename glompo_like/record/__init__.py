"""The run's record: what happened, kept and shown.

- :mod:`.ledger`: the manager's books — counters, one record per optimizer, the log;
- :mod:`.view`: the read-only view of the ledger that policies and reporters get;
- :mod:`.log`: the crash-safe SQLite evaluation log and :func:`read_log`;
- :mod:`.checkpoint`: the checkpoint file format and :class:`CheckpointingControl`;
- :mod:`.summary`, :mod:`.report`, :mod:`.export`, :mod:`.status`: the summary file,
  plots (PNG, or one interactive HTML page), CSV/HDF5 export and the live status;
- :mod:`.progress`: how far a run is and its ETA, as the status shows them;
- :mod:`.dashboard`: the local web page that follows a run from its log;
- :mod:`.prints`: capture of what each optimizer prints.
"""
