"""How IFCNN is trained here (:mod:`msgfusion.methods.deep.ifcnn` is the network).

Loss: the paper trained supervised (MSE + VGG perceptual loss against ground truth made from
synthetic multi-focus data). Neither the ground truth nor the ImageNet weights exist here, so CONV1
is trained with the rest and the loss is unsupervised, against both sources (AANLIB train split,
all three modality pairs): L = (1 - SSIM(F, A)) / 2 + (1 - SSIM(F, B)) / 2
+ |F - max(A, B)|_1 + | |grad F| - max(|grad A|, |grad B|) |_1 (Sobel gradients), i.e. the
structure of both sources plus the intensity and edges of the max rule that IFCNN applies to the
features. Deviations: grey input and output (1 channel instead of 3, no ImageNet normalisation).
"""

from __future__ import annotations

from msgfusion.methods.deep.ifcnn import NETWORK
from msgfusion.train.losses import FusionLoss, LossConfig
from msgfusion.train.recipes.base import Recipe
from msgfusion.train.trainer import TrainConfig

RECIPE = Recipe(
    network=NETWORK,
    loss=lambda: FusionLoss(LossConfig(ssim=1.0, mse=0.0, intensity_max=1.0, gradient_max=1.0)),
    train=TrainConfig(epochs=3, batch_size=4, lr=1e-3, crop=96, num_threads=1,
                      max_steps_per_epoch=100),
)
