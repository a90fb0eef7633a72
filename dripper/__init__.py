"""dripper: keep customers for life by email."""

from __future__ import annotations

__version__ = "0.1.0"
