"""HTML reports read from results folders: the run report, the capacity report, the meter picture.

Edge (files, matplotlib). A report reads only what a run wrote; it never talks to a target."""
