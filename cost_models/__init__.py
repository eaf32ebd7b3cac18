"""Pure cost models for MoE deployment planning: no I/O, no solver, SI units everywhere."""
