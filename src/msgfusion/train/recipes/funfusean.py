"""How FunFuseAn is trained here (:mod:`msgfusion.methods.deep.funfusean` is the network).

Loss: L = lambda [(1 - SSIM(F, MR)) + (1 - SSIM(F, PET))] / 2 + (1 - lambda) [MSE(F, MR) +
MSE(F, PET)] / 2 with lambda = 0.8 (the value behind the released PyTorch training log; SSIM with
an 11 x 11 Gaussian window) -- the same loss MsgFusion uses, so the shared
:class:`msgfusion.train.losses.FusionLoss` with its default (paper) weights is this loss.

Training data: the paper used 500 ADNI MR-PET pairs; here the AANLIB train split (all three
modality pairs; the functional image as its grey luminance). Deviations: the high-frequency rule is
the sum of the released PyTorch code (the TensorFlow code's max(a, b) / (a + b) is undefined where
the LeakyReLU features cancel); full paper widths are kept (about 120 k parameters); 4 epochs of
random 96 x 96 crops at the paper's learning rate 2e-3 (the paper: 200 epochs).
"""

from __future__ import annotations

from msgfusion.methods.deep.funfusean import NETWORK
from msgfusion.train.losses import FusionLoss, LossConfig
from msgfusion.train.recipes.base import Recipe
from msgfusion.train.trainer import TrainConfig

RECIPE = Recipe(
    network=NETWORK,
    loss=lambda: FusionLoss(LossConfig(ssim=0.8, mse=0.2)),
    train=TrainConfig(epochs=4, batch_size=8, lr=2e-3, crop=96, num_threads=1),
)
