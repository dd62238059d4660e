"""Training of fusion networks: losses, the shared trainer, MsgFusion training runs."""

from msgfusion.train.losses import FusionLoss, LossConfig
from msgfusion.train.trainer import Trainer, TrainConfig

__all__ = ["FusionLoss", "LossConfig", "TrainConfig", "Trainer"]
