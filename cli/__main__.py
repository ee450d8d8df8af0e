"""``python -m cli``: the console script without the installed entry point."""

from cli import main

main()
