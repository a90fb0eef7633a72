"""Transports: the one narrow boundary through which an email leaves dripper."""

from dripper.transport.base import Envelope, Outcome, OutcomeKind, Transport

__all__ = ["Envelope", "Outcome", "OutcomeKind", "Transport"]
