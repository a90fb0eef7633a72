"""The drip engine: pure planning decisions (no I/O, `now` is an argument)."""
