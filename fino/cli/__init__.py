"""The `fino` command line."""
