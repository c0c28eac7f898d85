"""The core stage modules, one function each, named like the stage (no stage module imports another)."""
