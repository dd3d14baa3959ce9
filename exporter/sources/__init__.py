"""Sources: find telemetry files and read them line by line, in constant memory."""
