import sys

from layerwise.terminal import interrupts

# First: SIGINT and SIGTERM during the imports below (the whole command line's modules, a long moment on a
# loaded machine) end in one line and 128 + the signal, not in a KeyboardInterrupt traceback.
interrupts.install()
try:
    from layerwise.cli import entry
except interrupts.Interrupted as stop:
    print(f"layerwise: {stop}", file=sys.stderr)
    sys.exit(stop.exit_code)

entry()
