"""Previews: every email rendered exactly as it would go out, for sample customers."""
