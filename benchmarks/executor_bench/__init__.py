"""The executor benchmark's parts: shapes, floors, the minimal reference, measurement, tables."""
