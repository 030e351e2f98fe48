"""The `dhims2` command: `main` dispatches to one module per subcommand, imported on use."""
