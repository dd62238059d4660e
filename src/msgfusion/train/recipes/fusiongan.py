"""How FusionGAN is trained here (:mod:`msgfusion.methods.deep.fusiongan` is the generator).

Loss (least squares GAN with soft labels): generator
L_G = E[(D(F) - c)^2] + lambda (1/HW) (||F - I_func||_F^2 + xi ||grad F - grad I_MR||_F^2),
lambda = 100, xi = 5, grad the 4-neighbour Laplacian, c ~ U[0.7, 1.2]; discriminator
L_D = E[(D(I_MR) - b)^2] + E[(D(F) - a)^2], b ~ U[0.7, 1.2], a ~ U[0, 0.3]; one discriminator
step per generator step, Adam for both (the learning-rate schedule applies to the generator;
the discriminator keeps its initial rate).

Training data: the paper used 45 TNO infrared/visible pairs cut into 120 x 120 patches; here random
128 x 128 crops of the AANLIB train split (all three modality pairs). Deviations: widths divided by
four in the generator (256, 128, 64, 32 -> 64, 32, 16, 8) and by two in the discriminator
(32, 64, 128, 256 -> 16, 32, 64, 128), to keep the weights small and training feasible on a CPU;
the discriminator global-average-pools before its linear layer, so it takes any crop size. The
adversarial training uses :class:`FusionGANTrainer`, the shared trainer with a second network and
optimiser (same data, seeding, log and checkpoints).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from msgfusion.methods.deep.fusiongan import NETWORK, signed
from msgfusion.methods.deep.layers import LAPLACIAN_4, filter2d, lrelu
from msgfusion.model.inputs import Batch, Forward, grey_pair_forward
from msgfusion.train.losses import LossFn
from msgfusion.train.recipes.base import Recipe
from msgfusion.train.trainer import Trainer, TrainConfig


class Discriminator(nn.Module):
    """N x 1 x H x W in [0, 1] -> N x 1 scores."""

    def __init__(self, widths: tuple[int, ...]) -> None:
        super().__init__()
        chans = (1, *widths)
        self.body = nn.Sequential(*[
            nn.Sequential(nn.Conv2d(i, o, 3, stride=2), *([nn.BatchNorm2d(o)] if k else []),
                          lrelu())
            for k, (i, o) in enumerate(zip(chans, chans[1:]))
        ])
        self.head = nn.Linear(widths[-1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(signed(x)).mean(dim=(2, 3)))


@dataclass(frozen=True)
class ContentLoss:
    """(1/HW) (||F - I_func||^2 + xi ||lap F - lap I_MR||^2) on the [-1, 1] images, xi = 5."""

    xi: float = 5.0

    def __call__(self, output: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        fused = signed(output)
        intensity = F.mse_loss(fused, signed(batch["func_gray"]))
        gradient = F.mse_loss(filter2d(fused, LAPLACIAN_4),
                              filter2d(signed(batch["mr"]), LAPLACIAN_4))
        total = intensity + self.xi * gradient
        return total, {"intensity": float(intensity.detach()), "gradient": float(gradient.detach())}


class FusionGANTrainer(Trainer):
    """The shared :class:`Trainer` with the discriminator as a second network and optimiser.

    ``loss_fn`` is the content loss; each step trains the discriminator once, then the generator
    on ``adversarial + content_weight * content``. The checkpoint also holds the discriminator.
    """

    content_weight = 100.0  # lambda

    def __init__(self, model: nn.Module, loss_fn: LossFn, cfg: TrainConfig | None = None,
                 forward: Forward = grey_pair_forward) -> None:
        super().__init__(model, loss_fn, cfg, forward)
        widths = model.cfg.discriminator  # type: ignore[union-attr]
        self.discriminator = Discriminator(widths).to(self.device)
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=self.cfg.lr,
                                            weight_decay=self.cfg.weight_decay)

    def _labels(self, n: int, low: float, high: float) -> torch.Tensor:
        u = torch.rand(n, 1, generator=self.generator)
        return (low + (high - low) * u).to(self.device)

    def train_step(self, batch: Batch) -> dict[str, float]:
        self.model.train()
        self.discriminator.train()
        n = batch["mr"].shape[0]
        fused = self.forward(self.model, batch)

        self.d_optimizer.zero_grad(set_to_none=True)
        d_real = self.discriminator(batch["mr"])
        d_fake = self.discriminator(fused.detach())
        d_loss = (F.mse_loss(d_real, self._labels(n, 0.7, 1.2))
                  + F.mse_loss(d_fake, self._labels(n, 0.0, 0.3)))
        d_loss.backward()
        self.d_optimizer.step()

        self.optimizer.zero_grad(set_to_none=True)
        adversarial = F.mse_loss(self.discriminator(fused), self._labels(n, 0.7, 1.2))
        content, terms = self.loss_fn(fused, batch)
        total = adversarial + self.content_weight * content
        total.backward()
        self.optimizer.step()
        return {"loss": float(total.detach()), "adversarial": float(adversarial.detach()),
                "content": float(content.detach()), **terms, "d_loss": float(d_loss.detach())}

    def state(self) -> dict:
        return {**super().state(), "discriminator": self.discriminator.state_dict(),
                "d_optimizer": self.d_optimizer.state_dict()}

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        self.discriminator.load_state_dict(state["discriminator"])
        self.d_optimizer.load_state_dict(state["d_optimizer"])


RECIPE = Recipe(
    network=NETWORK,
    loss=ContentLoss,
    train=TrainConfig(epochs=5, batch_size=8, lr=1e-3, crop=96, num_threads=1),
    trainer=FusionGANTrainer,
)
