"""`python -m cifarkit ...`: see `cifarkit.course.cli`."""
from .course.cli import main

if __name__ == "__main__":  # not when a Dask worker process (spawned) imports this module again
    raise SystemExit(main())
