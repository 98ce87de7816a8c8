"""graphkit.wseg.eval: the 1-stage-wseg VOC evaluation.

Needs the ``eval`` extra (Pillow for images and masks, matplotlib for the IoU chart); without it,
importing this package is one GraphkitError line naming the install command.
"""

from graphkit.util.extras import require

for _module, _package in (("PIL", "pillow"), ("matplotlib", "matplotlib")):
    require(_module, "eval", "graphkit eval", package=_package)
