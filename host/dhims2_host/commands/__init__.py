"""One module per `dhims2` subcommand, each with `configure_parser(parser)` and `run(args)`."""
