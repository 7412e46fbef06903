"""SegBench's harness: what to run (spec), measuring one cell (measure, worker), the sweep (run), storage."""
