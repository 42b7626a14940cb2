"""Command line: the only place that reads config, sets up logging and calls sys.exit."""
