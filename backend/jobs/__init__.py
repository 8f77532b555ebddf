"""Background jobs on Huey: the engine for the settings, the tasks that run jobs, and the worker process."""
