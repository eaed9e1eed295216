"""Plan search: the fastest plan of an experiment, scored by the twin and re-ranked by events."""
