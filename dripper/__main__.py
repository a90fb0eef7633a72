from __future__ import annotations

from dripper.cli import main

main()
