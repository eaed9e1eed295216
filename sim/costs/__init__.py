"""Pure cost functions of the simulator (no SimPy): kernels, L2 residency, communication, stage passes."""
