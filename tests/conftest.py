"""Suite-wide settings: under CI (``CI`` set, as ``.ci/run`` does) every hypothesis test runs the
same examples on every run (derandomized, no example database), so CI judges the code, not luck."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")
