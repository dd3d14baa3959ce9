"""Events: parse one raw line, give it a time, group errors by fingerprint."""
