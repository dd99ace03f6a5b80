"""Sinks: what the supervisor feeds with facts (run started, window closed, snapshot, finished).

Edge. The live terminal view, the results folder writer, junit.xml; each renders or writes, none measures."""
