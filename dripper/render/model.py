"""The values the renderer takes and gives: what it needs of a campaign, a step and an
edition (the campaigns package's classes fit), and the rendered email."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from dripper.render.mime import Headers


class CampaignLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def file(self) -> str: ...


class StepLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def subjects(self) -> tuple[str, ...]: ...
    @property
    def template(self) -> str: ...
    @property
    def line(self) -> int: ...


class EditionLike(Protocol):
    @property
    def slug(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def html(self) -> str: ...
    @property
    def text(self) -> str: ...


@dataclass(frozen=True)
class RenderedEmail:
    """One email, complete. `mime` is what the transport sends."""

    message_id: str  # without angle brackets
    sender: str  # envelope sender (the From address)
    recipient: str
    subject: str
    html: str
    text: str
    headers: Headers
    mime: bytes

    def to_bytes(self) -> bytes:
        return self.mime
