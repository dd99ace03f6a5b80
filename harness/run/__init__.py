"""Running a profile: the session (set-up, verdict), the supervisor, where shards run (local processes, Dask),
the worker process and its VENs.

Edge. The supervisor creates no loop, session or thread; each worker owns one uvloop loop for its whole life."""
