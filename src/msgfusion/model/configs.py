"""Configurations of the MsgFusion network: small dataclasses, two presets from the same modules.

Wen et al., "MsgFusion: Medical Semantic Guided Two-Branch Network for Multimodal Brain Image
Fusion", IEEE TMM 26:944-957, 2024 (MSGFUSION.md section 3).

- :func:`paper`: the released layout (64-channel branches, 256-channel multi-scale encoder,
  about 2.6 M parameters); trainable on a GPU.
- :func:`lite`: the same branches and two-level fusion, narrow, with the heavy work at reduced
  resolution; the shipped default, trainable on a CPU.

The ablation switches of the paper (MR-PET ablation: no frequency path, no V') are
:attr:`SFConfig.frequency` and :attr:`MsgFusionConfig.use_v_prime`.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class SFConfig:
    """SF branch (MR): SF1 spatial conv, SF2 frequency-domain path, soft-weighted merge."""

    channels: int = 64
    spatial_kernel: int = 7  # SF1: 7x7 conv, stride 1, padding 3 (paper)
    frequency: bool = True  # SF2 on/off (ablation "without the frequency path")
    freq_bands: int = 8  # radial bands of the learnable amplitude gain
    low_cutoff: float = 0.25  # LF/HF split radius, as a fraction of the Nyquist frequency
    freq_scale: int = 0  # SF2 works at 1/2^freq_scale resolution


@dataclass(frozen=True)
class GVConfig:
    """GV branch (CT/PET/SPECT): GV1 multi-scale encoder, GV2 brightness path from V'."""

    in_channels: int = 3  # the functional image as RGB (grey CT replicated)
    stem_kernel: int = 7  # first layer (ResNet conv1 in the released script, trained here)
    widths: tuple[int, ...] = (64, 128, 256)  # per scale: full, 1/2, 1/4, ... resolution
    convs_per_scale: int = 3  # 3x3 convolutions per reduced scale (encoder and decoder)
    out_channels: int = 64  # GV1 output channels (must equal the SF channels)
    out_gain: float = 3.0  # initial per-channel gain on GV1's tanh output (range of SF)
    brightness_kernel: int = 7  # GV2: conv7x7 -> conv1x1 -> tanh
    brightness_channels: int = 3
    v_weight: float = 1.0  # initial weight of V' in the GV2 merge (learned; 1: the spec's merge)


@dataclass(frozen=True)
class MsgFusionConfig:
    """The whole network: SF branch, GV branch and the classification-based fusion."""

    sf: SFConfig = field(default_factory=SFConfig)
    gv: GVConfig = field(default_factory=GVConfig)
    out_channels: int = 3  # L1 = tanh(conv1x1_{C -> out_channels}(max(SF, GV1)))
    use_v_prime: bool = True  # level-2 fusion with GV2 (ablation "without V'")
    gain_max: float = 0.0  # upper bound of the learnable L1 gain (0: unbounded)
    # Ours: the output is the pixel maximum of the MR and the functional luminance plus the
    # fusion's output as a correction, whose L1 gain starts at ``residual_gain`` (0: the
    # untrained network is the pixel maximum).
    residual_max: bool = False
    residual_gain: float = 0.0

    def __post_init__(self) -> None:
        if self.sf.channels != self.gv.out_channels:
            raise ValueError(
                f"SF channels ({self.sf.channels}) and GV1 out_channels ({self.gv.out_channels}) "
                "must match: level-1 fusion takes their element-wise maximum"
            )

    @property
    def multiple(self) -> int:
        """Inputs are padded to a multiple of this (the down-sampling factor of GV1)."""
        return 2 ** (len(self.gv.widths) - 1)


def paper() -> MsgFusionConfig:
    """The released layout (MSGFUSION.md section 3), about 2.6 M parameters."""
    return MsgFusionConfig()


def lite() -> MsgFusionConfig:
    """The base of the shipped networks: the same modules, 4 channels at full resolution, the rest
    at 1/2-1/4 (the shipped config widens it per modality: CT 16, PET and SPECT 8 channels).

    At full resolution only SF1 (7x7, 1 -> 4), the GV1 stem (3x3, 3 -> 4) and 1x1 heads run;
    SF2 works at 1/4 resolution and GV1's encoder/decoder at 1/2 and 1/4 (about 66 M
    multiply-adds per 256 x 256 pair, against about 10^11 for :func:`paper`).
    """
    return MsgFusionConfig(
        sf=SFConfig(channels=4, freq_scale=2),
        gv=GVConfig(stem_kernel=3, widths=(4, 8, 16), convs_per_scale=1, out_channels=4,
                    brightness_channels=1),
        out_channels=1,
    )


PRESETS = {"paper": paper, "lite": lite}


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build a (nested, frozen) config dataclass from a dict, rejecting unknown keys."""
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - set(known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {', '.join(sorted(unknown))}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        default = getattr(cls(), key)
        if is_dataclass(default) and isinstance(value, dict):
            value = from_dict(type(default), value)
        elif isinstance(default, tuple):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def model_config(spec: str | dict[str, Any]) -> MsgFusionConfig:
    """A preset name (``paper``/``lite``) or a dict ``{"preset": ..., <overrides>}``."""
    if isinstance(spec, str):
        spec = {"preset": spec}
    spec = dict(spec)
    preset = spec.pop("preset", "lite")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return from_dict(MsgFusionConfig, merge_overrides(asdict(PRESETS[preset]()), spec))


def merge_overrides(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied in place: nested dicts are merged key by key, any
    other value replaces the base's."""
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge_overrides(base[key], value)
        else:
            base[key] = value
    return base


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a JSON or TOML file into a dict."""
    path = Path(path)
    if path.suffix.lower() == ".toml":
        with path.open("rb") as fh:
            return tomllib.load(fh)
    return json.loads(path.read_text())


def with_ablation(cfg: MsgFusionConfig, frequency: bool, v_prime: bool) -> MsgFusionConfig:
    """The same network with the frequency path and/or GV2 switched on or off."""
    return replace(cfg, sf=replace(cfg.sf, frequency=frequency), use_v_prime=v_prime)
