"""Rotating the server secrets: ``rueckhalt secrets rotate NAME`` and ``rueckhalt secrets status``.

``service.secrets.rotation.ROTATIONS`` holds one entry per secret: what it protects, what a rotation does to
the running service, whether the previous value stays readable (and until when), and the re-keying work
that needs both values. The command line (``service.secrets.cli``) is not imported here.
"""

from service.secrets.rotation import ROTATIONS, Rotation

__all__ = ["ROTATIONS", "Rotation"]
