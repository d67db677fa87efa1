"""The messages people receive: Jinja2 templates per language, and their renderer."""

from messages.render import (
    TEMPLATES_DIR,
    MessageContext,
    RenderedMessage,
    Renderer,
    RenderError,
    TemplateNotFound,
)

__all__ = [
    "TEMPLATES_DIR",
    "MessageContext",
    "RenderError",
    "RenderedMessage",
    "Renderer",
    "TemplateNotFound",
]
