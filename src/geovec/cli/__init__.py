"""The ``geovec`` command line (``geovec.cli.main``) and its sub-commands, one module each."""
