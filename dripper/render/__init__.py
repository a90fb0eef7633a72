"""Rendering: templates (MJML or HTML, with Jinja2) to complete emails as bytes.

The public surface is small: `Renderer` (render, check, template_files,
new_message_id), `RenderedEmail`, `Limits` and the errors. See renderer.py.
"""

from __future__ import annotations

from dripper.render.errors import HeaderError, LimitError, RenderError
from dripper.render.model import RenderedEmail
from dripper.render.renderer import Renderer
from dripper.render.sandbox import Limits

__all__ = ["HeaderError", "LimitError", "Limits", "RenderError", "RenderedEmail", "Renderer"]
