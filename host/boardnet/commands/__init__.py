"""What each `boardnet` command does, one module per command; the CLI (boardnet.cli) parses
the arguments, calls these and prints what they return."""
