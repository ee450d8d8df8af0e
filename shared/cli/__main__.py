"""``python -m shared.cli``: the console script without the installed entry point."""

from shared.cli import main

main()
