"""The top layer: command-line options, resolving them into a ``RunConfig``, the checks made
before anything is launched, the CLI (``python -m pipeline``) and the Flex Template launcher."""
