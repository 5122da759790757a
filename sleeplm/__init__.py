"""SleepLM Monitor: the ``sleeplm`` command-line entry point that gathers every package's commands."""
