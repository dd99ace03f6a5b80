"""The host process's own settings and limits: open files and ephemeral ports a fleet needs, garbage-collector tuning.

Edge (resource limits, /proc, gc). Decided before any worker starts, or once at a process's entry."""
