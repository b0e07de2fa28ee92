"""Pipeline assembly, local running, tracking and the `mlops` command line."""
