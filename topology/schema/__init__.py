"""The one schema layer: every input kind's fields (type, unit, range, finiteness) and the rules across
fields, as pydantic models, one module per kind.

- :mod:`topology.schema.experiment`: the experiment file (model, cluster, workload, plans)
- :mod:`topology.schema.plan`: a saved ``Plan`` (``*.plan.json``), and where a plan may run
- :mod:`topology.schema.profile`: a hardware profile (``layerwise calibrate`` / ``validate --ship-profile``)
- :mod:`topology.schema.result`: a result in the shared schema (simulated or measured)
- :mod:`topology.schema.imported`: an imported-runs file (``topology/imported.py``)
- :mod:`topology.schema.trace`: a Chrome / Perfetto trace
- :mod:`topology.schema.fields`: the number types every kind uses, command-line numbers included

:func:`topology.schema.check.validated` checks a parsed file against its model and turns the first
problem into one :class:`~topology.errors.LayerwiseError` line naming the file, the field path and the
value. The loaders (``topology.profile``, ``topology.plan``, ...) call it before they build their
frozen dataclasses, so the dataclasses are only ever built from checked values.
``python -m topology.schema.publish`` writes the JSON Schema files in ``schemas/``.
"""
