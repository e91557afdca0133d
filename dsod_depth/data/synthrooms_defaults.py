"""SynthRooms' appearance defaults, light to import (the command line reads them for its help).

The models themselves live in :mod:`dsod_depth.data.synthrooms.appearance`; how the default
randomness was chosen is in ``dsod_depth/data/synthrooms/CALIBRATION.md``.
"""

APPEARANCE_MODELS = ("materials", "hue-blend")
DEFAULT_APPEARANCE_MODEL = "materials"
# Chosen on development frames so that the demo's modality balance resembles NYU Depth v2's
# (RGB about as strong as HHA, RGB+HHA above both): see CALIBRATION.md.
DEFAULT_RANDOMNESS = 0.0
