"""The fast path of serving: the run of ``serving.driver.run_serving`` with the decisions of
``serving.scheduler.Scheduler``, exactly, at a cost per iteration that does not grow with the number
of requests decoding.

* ``state.py``: a request's live state (``LiveRequest``) and a *cohort* of decoders that advance
  together, kept relative to the cohort's step count;
* ``replica.py``: one replica's scheduler on cohorts (an O(1) running pass when neither the token
  budget nor the KV pool binds, the scheduler's own pass request by request when one does);
* ``driver.py``: the event loop, instant for instant the reference driver's;
* ``recorders.py``: what a run keeps (records and samples as the reference, iterations as plans or
  columns); ``summary.py``: a summary for runs too large to keep token times;
* ``run.py``: ``run_serving_fast`` and ``summarize_serving``.

The iteration-time function takes the iteration's shape (``serving.shape``), not its plan: the fast
path never makes a ``PlanItem`` per request unless asked to (``detail="trace"``).
"""
