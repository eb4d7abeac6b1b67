"""`python -m ractd ...` (and `torchrun -m ractd train ...`)."""

from .cli import main

main()
