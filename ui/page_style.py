"""How the chat page looks: its CSS, font stacks and on-load script. Plain text for
ui.app to hand to gradio; no gradio here."""

CSS = """
#pc-intro p { margin: 0.2em 0 0.6em; }
#pc-status { min-height: 1.6em; color: var(--body-text-color-subdued); font-size: 0.92em; }
.pc-sources h3 { margin: 0 0 0.5em; font-size: 1.05em; }
.pc-source { border: 1px solid var(--border-color-primary); border-radius: 8px;
  padding: 0.55em 0.75em; margin-bottom: 0.6em; }
.pc-source-head { font-weight: 600; margin-bottom: 0.3em; }
.pc-source .pc-n { color: var(--color-accent); }
.pc-score { font-weight: 400; font-size: 0.82em; color: var(--body-text-color-subdued);
  margin-left: 0.4em; white-space: nowrap; }
.pc-abstract { font-size: 0.88em; line-height: 1.45; margin: 0; }
.pc-abstract mark { background: #fff1a8; color: inherit; padding: 0 1px; border-radius: 2px; }
.pc-uncited summary { cursor: pointer; font-size: 0.92em; }
.pc-uncited li { font-size: 0.88em; margin: 0.35em 0; }
.pc-byline { font-weight: 400; font-size: 0.86em; color: var(--body-text-color-subdued);
  margin-left: 0.4em; }
.pc-search { font-weight: 400; font-size: 0.75em; border: 1px solid var(--border-color-primary);
  border-radius: 4px; padding: 0 4px; margin-left: 0.3em; }
.pc-empty { color: var(--body-text-color-subdued); font-size: 0.92em; }
/* Side by side with the chat, the sources scroll within the chat's height. */
@media (min-width: 900px) { #pc-sources { max-height: 640px; overflow-y: auto; } }
/* LLM mode cannot be picked when no endpoint is configured; the info text says why. */
.pc-llm-off label:has(input[value="llm"]) { opacity: 0.45; pointer-events: none; }
"""

# The system's own fonts: nothing is fetched (the page works offline) and bold text uses the
# same family's bold face. Gradio's default theme ships Source Sans Pro in weights 400 and 600
# only, so bold (700) text mixed synthesized and fallback glyphs.
SYSTEM_FONTS = (
    "system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Noto Sans",
    "Liberation Sans", "DejaVu Sans", "Arial", "sans-serif",
)  # fmt: skip
SYSTEM_MONO_FONTS = (
    "ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono",
    "DejaVu Sans Mono", "monospace",
)  # fmt: skip

# Focus the question box on load only on wide screens: on a phone, focusing scrolls the page
# down to the box and opens the keyboard over the intro.
FOCUS_ON_WIDE_SCREENS = """
() => {
  if (window.matchMedia('(min-width: 900px)').matches) {
    const box = document.querySelector('#pc-question textarea');
    if (box) box.focus({ preventScroll: true });
  }
}
"""
