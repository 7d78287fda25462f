"""`python -m llmspec.cli`: the same as the `llmspec` command."""

from llmspec.cli import main

main()
