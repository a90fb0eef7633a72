"""The good rows of an import, in file order, as batches of unique addresses for the store.

An import writes while it reads (in one transaction, so a bad row anywhere still leaves
nothing), a batch at a time, and never holds the file. Duplicate rows of one address
merge as if the whole file had been read first (`CustomerData.merged_with`: later values
win, tags are united): inside a batch here, and across batches in the store, which
merges a row marked `again` into the row an earlier batch wrote. To mark them, the
batcher remembers, for each address written, a 64-bit hash and whether its rows gave
tags: a dict of ints, about 80 bytes an address (80 MB for a million), never the rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dripper.customers.model import CustomerData

# A batch ends at this many addresses, or after this much of the file, whichever comes
# first (rows of 10,000-character cells must not make a batch of gigabytes). Bigger
# batches than the store's 1,000-row statements: switching between reading and writing
# less often keeps each side's code and data in the CPU caches (a few per cent faster).
BATCH = 5000
BATCH_BYTES = 4 << 20


@dataclass(frozen=True)
class Batch:
    rows: list[CustomerData]  # unique addresses
    # Addresses an earlier batch may have written (their hash was seen; the store makes
    # sure), each with whether tags were given for it then.
    again: dict[str, bool] = field(default_factory=dict)


class Batcher:
    """Feed rows with `add`; each full batch comes back, the last one from `flush`."""

    def __init__(self, size: int = BATCH, max_bytes: int = BATCH_BYTES) -> None:
        self._size = size
        self._max_bytes = max_bytes
        self._started_at = 0  # bytes of the file read when the pending batch began
        self._pending: dict[str, CustomerData] = {}
        self._written: dict[int, bool] = {}  # hash(address) -> tags given

    def add(self, row: CustomerData, read: int = 0) -> Batch | None:
        """`read`: the bytes of the file read so far, which bound a batch too."""
        earlier = self._pending.get(row.email)
        self._pending[row.email] = row if earlier is None else earlier.merged_with(row)
        if len(self._pending) >= self._size or read - self._started_at >= self._max_bytes:
            self._started_at = read
            return self.flush()
        return None

    def flush(self) -> Batch | None:
        if not self._pending:
            return None
        rows = list(self._pending.values())
        self._pending = {}
        again: dict[str, bool] = {}
        written = self._written
        for row in rows:
            key = hash(row.email)
            given = written.get(key)
            if given is not None:
                again[row.email] = given
            written[key] = bool(given) or row.tags is not None
        return Batch(rows, again)
