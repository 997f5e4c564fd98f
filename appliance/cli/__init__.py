"""The `appliance` command: the parser, one module per command, and how errors become exit codes."""
