"""Modality words: the aliases a modality string may use for a channel group, in one direction.

A modality names the channel groups fed to the network, joined by ``+`` or ``_`` (``rgb+hha``). Each
word is a stored group (``rgb``, ``hha``) or an encoder name (:mod:`dsod_depth.encoders`), or one of
the aliases below: ``depth`` is the ``raw`` encoder (metric depth, 1 channel). The loader
(:func:`dsod_depth.data.loader.parse_modality`) reads an alias as its encoder; tables and run names
(:mod:`dsod_depth.experiments.naming`) show the alias in place of the encoder name, reading the same
table backwards.

This module imports nothing, so that the sweep's planning reads the table without loading torch.
"""

from __future__ import annotations

__all__ = ["MODALITY_ALIASES"]

MODALITY_ALIASES = {"depth": "raw"}  # modality word → encoder name
