"""CP-SAT models, one module per decision; integers only at the solver boundary (see quantize.py)."""
