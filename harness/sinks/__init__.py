"""Sinks: what a run tells its facts (run started, window closed, snapshot, finished); the seam is `base.RunSink`.

Edge. The live terminal view, the results folder writer, junit.xml, and two watches that may stop a run (threshold
aborts, the capacity step's hold); each renders, writes or judges, none measures."""
