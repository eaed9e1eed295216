"""The serving executor: ``layerwise run`` on a ``workload.phase: serve`` experiment serves real
requests (random weights, every request to exactly its output length) with the scheduler the
simulator uses (``serving.scheduler``), and writes the ``layerwise-serving-run`` record.

Its homes, one responsibility each:

* ``clock.py``: the run's clock (dyadic, strictly increasing stamps, so a replay is exact);
* ``pages.py``: the physical KV pages of a rank, sized for what the scheduler admits;
* ``inputs.py``: one iteration's inputs built on the host (slots, extents, token ids);
* ``attention.py``: attention that costs only the tokens present (paged ``varlen_attn``, gathered
  ``varlen_attn``, or SDPA per request), feature-detected and checked against the reference;
* ``stage.py``: a rank's layers, embedding, output head and greedy sampler over its KV pages;
* ``graphs.py``: CUDA graphs of decode-only batches, one per captured batch size;
* ``messages.py`` and ``transport.py``: plans, heartbeats and tokens between ranks;
* ``runner.py``: one rank's part of an iteration, and the loop of every rank but 0;
* ``engine.py``: rank 0's loop, ``serving.driver``'s event order on a measured clock;
* ``session.py``: setting a rank up, serving, the record and its environment;
* ``worker.py`` and ``launch.py``: the torchrun worker and the launcher's checks;
* ``summary.py``: the latency lines a run prints.

``serving.replay`` checks a record: its iteration times, fed back into the driver, reproduce every
batch. ``executor.calibrate.serving_host`` measures the host's cost per iteration with it.
"""
