"""`python -m cifarkit ...`: see `cifarkit.cli`."""
from .cli import main

raise SystemExit(main())
