"""The one exception of the converter."""

from __future__ import annotations

__all__ = ["ConversionError"]


class ConversionError(ValueError):
    """The input (checkpoint, config, output folder, card name, repo id) cannot be converted; the message says why.

    `argument` is the input at fault when there is one: the name of the `convert_unicl_checkpoint` parameter
    (`"checkpoint"`, `"config"`, `"output_dir"`, `"card_name"` or `"repo_id"`), and the message starts with that name
    followed by the value, e.g. `checkpoint /x/in1k.pth: no such file.` A command line replaces the name with its flag;
    the library never names command-line flags."""

    def __init__(self, message: str, argument: str | None = None):
        super().__init__(message)
        self.argument = argument
