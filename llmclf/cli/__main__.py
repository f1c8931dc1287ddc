"""`python -m llmclf.cli`: the `llmclf` command."""
from . import main

main()
