"""`python -m tagger.cli`, as the console script."""

from . import main

main()
