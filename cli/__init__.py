"""`mlops`: the command line, one module per command group (run, serve, release, ops); the only
importer of this package is the console entry point (``cli.main:entry``)."""
