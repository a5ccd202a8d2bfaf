"""Built-in plugins: audio encoders, motion generators, renderers and presets.

Each subpackage registers its stages through the same hooks a third-party plugin uses.
"""
