"""The pure core: profile, fleet, schedules, histograms, recorder, results, thresholds, messages,
capacity analysis, exit codes and user-facing errors.

Pure: stdlib + numpy only; no sockets, loops, processes, terminal or clock reads (callers pass time in).
tests/test_structure.py holds the line by folder: every module here (and in meter/, dialects/) is checked."""
