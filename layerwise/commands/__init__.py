"""The subcommands: each module is a thin adapter (``add_arguments(parser)``, ``run(args) -> int``)
over the functions of the package that owns the work."""
