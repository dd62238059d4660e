"""The SF branch of MsgFusion: spatial (SF1) and frequency-domain (SF2) features of the MR image.

Wen et al., IEEE TMM 26:944-957, 2024, Fig. 2 (FFT -> phase/magnitude -> LF/HF -> inverse FFT).
The released script's frequency path, ``abs(ifft(fftshift(fft(z))))``, is the identity on
non-negative ``z``; :class:`FrequencyUnit` is a working one (MSGFUSION.md section 3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from msgfusion.model.configs import SFConfig
from msgfusion.model.layers import ConvNormAct, soft_weighted_merge, upsample


def radial_frequency(height: int, width: int, device: torch.device) -> torch.Tensor:
    """|f| / f_Nyquist on the ``rfft2`` grid (H x (W//2+1)), in [0, sqrt(2)]."""
    fy = torch.fft.fftfreq(height, device=device).abs() * 2.0
    fx = torch.fft.rfftfreq(width, device=device) * 2.0
    return torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)


class FrequencyUnit(nn.Module):
    """SF2: learnable filtering of the amplitude and phase spectra with a low/high-frequency split.

    z = embed(x); Z = rfft2(z); amplitude A and phase P are filtered separately:

    - A' = A * g_c(|f|) * (1 + conv1x1(log1p A)): a per-channel radial gain g_c (``bands``
      learnable values linearly interpolated over |f| / f_Nyquist, so any image size works)
      and a learnable cross-channel modulation;
    - P' = P + conv1x1(P) (initialised to zero: starts as the identity on phase).

    The spectrum A' e^{iP'} is split at ``low_cutoff`` into a low-frequency part (global
    intensity layout) and a high-frequency part (edges, texture), each brought back with
    ``irfft2``, and the two are combined by a learnable 1x1 convolution. With ``scale`` > 0 the
    unit works at 1/2^scale resolution (average-pooled input, bilinearly up-sampled output).
    """

    def __init__(
        self, channels: int, bands: int = 8, low_cutoff: float = 0.25, scale: int = 0
    ) -> None:
        super().__init__()
        self.scale = scale
        self.embed = ConvNormAct(1, channels, 3)
        self.band_gain = nn.Parameter(torch.ones(channels, bands))
        self.amplitude = nn.Conv2d(channels, channels, 1)
        self.phase = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.amplitude.weight)
        nn.init.zeros_(self.amplitude.bias)
        nn.init.zeros_(self.phase.weight)
        nn.init.zeros_(self.phase.bias)
        self.merge = ConvNormAct(2 * channels, channels, 1)
        self.low_cutoff = low_cutoff

    def _radial_gain(self, radius: torch.Tensor) -> torch.Tensor:
        """g_c(|f|): per-channel gains at ``bands`` points over [0, sqrt 2], linearly interpolated."""
        bands = self.band_gain.shape[1]
        pos = (radius / 2**0.5).clamp(0, 1) * (bands - 1)
        knots = torch.arange(bands, device=radius.device, dtype=radius.dtype)
        hat = (1 - (pos[None] - knots[:, None, None]).abs()).clamp(min=0)  # bands x H x W'
        return torch.einsum("cb,bhw->chw", self.band_gain, hat).unsqueeze(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.low_res(x), x.shape[-2:])

    def upsample(self, low: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
        """The features of :meth:`low_res` brought to ``size`` (bilinear; unchanged at scale 0)."""
        if not self.scale:
            return low
        return upsample(low, size)

    def low_res(self, x: torch.Tensor) -> torch.Tensor:
        """The filtered features at the unit's working resolution, 1/2^scale (the global part:
        every output pixel depends on the whole image through the spectrum)."""
        if self.scale:
            x = F.avg_pool2d(x, 2**self.scale, ceil_mode=True)
        z = self.embed(x)
        h, w = z.shape[-2:]
        spec = torch.fft.rfft2(z.float(), norm="ortho")
        amp, phase = spec.abs(), spec.angle()
        radius = radial_frequency(h, w, z.device)
        amp = amp * self._radial_gain(radius) * (1 + self.amplitude(torch.log1p(amp)))
        phase = phase + self.phase(phase)
        filtered = torch.polar(amp, phase)
        low = (radius <= self.low_cutoff).to(amp.dtype)
        lf = torch.fft.irfft2(filtered * low, s=(h, w), norm="ortho")
        hf = torch.fft.irfft2(filtered * (1 - low), s=(h, w), norm="ortho")
        return self.merge(torch.cat([lf, hf], dim=1))


class SFBranch(nn.Module):
    """SF = soft-weighted merge of SF1 (spatial 7x7 conv) and SF2 (frequency path) of the MR.

    With ``cfg.frequency`` off (the paper's ablation) SF = SF1.
    """

    def __init__(self, cfg: SFConfig) -> None:
        super().__init__()
        self.spatial = ConvNormAct(1, cfg.channels, cfg.spatial_kernel)
        self.frequency = (
            FrequencyUnit(cfg.channels, cfg.freq_bands, cfg.low_cutoff, cfg.freq_scale)
            if cfg.frequency
            else None
        )

    def forward(self, mr: torch.Tensor, sf2: torch.Tensor | None = None) -> torch.Tensor:
        """SF of ``mr``; ``sf2``: the frequency features of ``mr`` when already computed (a tile
        of the whole image's, see :meth:`MsgFusionNet.forward_tiled`)."""
        sf1 = self.spatial(mr)
        if self.frequency is None:
            return sf1
        return soft_weighted_merge(sf1, self.frequency(mr) if sf2 is None else sf2)
