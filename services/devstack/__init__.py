"""The local stack without Docker: real servers under supervisord, started, probed and stopped."""
