"""Serving in the simulator: the cost of one mixed iteration (:mod:`.iteration_cost`) and a served
experiment on one plan (:mod:`.run`)."""
