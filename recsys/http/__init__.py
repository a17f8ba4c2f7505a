"""The HTTP adapter: a Litestar app over the same service functions the CLI calls.

Importing this package is cheap (no litestar): the training child process imports
`recsys.server.jobs` and must not pay for the web stack.
"""
