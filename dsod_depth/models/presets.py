"""Named DSOD configurations.

``DSOD300`` — DS/64-192-48-1, the official network (layer table in :mod:`dsod_depth.models.dsod`):
14,715,804 learnable parameters with 21 classes, about 15.1 G multiply-adds at 300×300.

``DSOD300_SMALL`` — DS/64-64-16-1, the paper's smallest variant (stem 64, bottleneck 64, growth 16,
compression 1) with the same prediction structure as DSOD300. The paper reports 5.9M parameters (BN
statistics included) for its own head widths, which the official code does not publish; this one has
the DSOD300 prediction widths.

``DSOD_TINY`` — a CPU-friendly network for 160×160 inputs, small enough for a demo to train on two
CPU cores in about a minute. Same structure (stem, 4 dense blocks, dense prediction), smaller widths and
five prediction scales; default boxes come from :func:`dsod_depth.detection.priors.scaled_config`
(4, 6, 6, 4, 4 boxes per cell → 2,402 boxes). Layer table at 160×160:

=============  ================================================================  ===============
stage          op                                                                out C @ H×W
=============  ================================================================  ===============
stem           conv3×3 s2 → BN → ReLU; conv3×3 → BN → ReLU; conv3×3 → BN → ReLU  16, 16, 32 @ 80
pool           max 2×2 s2 ceil                                                   32 @ 40
dense block 1  2 × [BN-ReLU-conv1×1(32), BN-ReLU-conv3×3(16)], concat            64 @ 40
transition 1   BN-ReLU-conv1×1(64), max 2×2 s2 ceil                              64 @ 20
dense block 2  2 layers                                                          96 @ 20
transition 2   BN-ReLU-conv1×1(96), no pooling → scale 1                         96 @ 20
pool           max 2×2 s2 ceil                                                   96 @ 10
dense block 3  2 layers                                                          128 @ 10
transition 3   BN-ReLU-conv1×1(128), no pooling                                  128 @ 10
dense block 4  2 layers                                                          160 @ 10
transition 4   BN-ReLU-conv1×1(64), no pooling (learned half of scale 2)         64 @ 10
scale 2        concat(transition 4, BN-ReLU-conv1×1(64) of maxpool(scale 1))     128 @ 10
scale 3        concat(reused 64, learned 64) (learning half, reusing half)       128 @ 5
scale 4        concat(reused 32, learned 32)                                     64 @ 3
scale 5        concat(reused 32, learned 32)                                     64 @ 2
=============  ================================================================  ===============
"""

from __future__ import annotations

from dsod_depth.models.dsod import DSODConfig

DSOD300 = DSODConfig()

DSOD300_SMALL = DSODConfig(stem_channels=(64, 64, 128), growth_rate=16, bottleneck=64)

DSOD_TINY = DSODConfig(
    stem_channels=(16, 16, 32),
    growth_rate=16,
    bottleneck=32,
    block_layers=(2, 2, 2, 2),
    half_channels=(64, 64, 32, 32),
)
DSOD_TINY_INPUT_SIZE = 160
