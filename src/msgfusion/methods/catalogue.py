"""The built-in fusion methods as listed: name, class, one-line description, reference.

The list is plain data so that ``msgfusion methods`` and :func:`list_methods` answer without
importing the methods' modules (the networks import torch, the classical methods scipy or
PyWavelets, about a second together); a class is imported when its method is first used
(:meth:`MethodInfo.load`). Listing order is the order here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from msgfusion.methods.registry import FusionMethod


@dataclass(frozen=True)
class MethodInfo:
    """A method as listed, and where its class is.

    ``target`` is ``"module:Class"`` (imported by :meth:`load`) or, for a method added with
    :func:`msgfusion.methods.registry.register`, the class itself. The class of a built-in method
    defines ``name`` and ``fuse``; it gets ``description`` and ``reference`` from here.
    """

    name: str
    target: str | type[FusionMethod]
    description: str
    reference: str

    @property
    def module(self) -> str:
        """The module that defines the method's class."""
        if isinstance(self.target, str):
            return self.target.partition(":")[0]
        return self.target.__module__

    def load(self) -> type[FusionMethod]:
        """The method's class (its module imported on first call)."""
        if not isinstance(self.target, str):
            return self.target
        module, _, attr = self.target.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        if cls.name != self.name:
            raise TypeError(f"{self.target} is named {cls.name!r}, listed as {self.name!r}")
        cls.description, cls.reference = self.description, self.reference
        return cls


BUILTIN_METHODS: tuple[MethodInfo, ...] = (
    MethodInfo(
        "msgfusion",
        "msgfusion.methods.msgfusion:MsgFusion",
        "MsgFusion two-branch network (SF/GV branches, two-level max fusion), lite",
        "Wen et al., IEEE Transactions on Multimedia 26:944-957, 2024",
    ),
    MethodInfo(
        "average",
        "msgfusion.methods.classical.pixel:PixelAverage",
        "pixel average of MR and functional intensity",
        "baseline rule, e.g. Piella, Information Fusion 4(4):259-280, 2003 (review)",
    ),
    MethodInfo(
        "max",
        "msgfusion.methods.classical.pixel:PixelMaximum",
        "pixel maximum of MR and functional intensity",
        "baseline rule, e.g. Piella, Information Fusion 4(4):259-280, 2003 (review)",
    ),
    MethodInfo(
        "pca",
        "msgfusion.methods.classical.pca:PCAFusion",
        "PCA-weighted average (weights from the principal eigenvector of the covariance)",
        ("V. P. S. Naidu, J. R. Raol, \"Pixel-level image fusion using wavelets and principal "
         "component analysis\", Defence Science Journal 58(3):338-352, 2008"),
    ),
    MethodInfo(
        "lp",
        "msgfusion.methods.classical.pyramid:LaplacianPyramidFusion",
        "Laplacian pyramid, 4 levels: max-abs details, averaged base",
        ("P. J. Burt, E. H. Adelson, \"The Laplacian pyramid as a compact image code\", IEEE "
         "Transactions on Communications 31(4):532-540, 1983"),
    ),
    MethodInfo(
        "dwt",
        "msgfusion.methods.classical.wavelet:DWTFusion",
        "DWT (db2, 3 levels): max-abs details, averaged approximation",
        ("H. Li, B. S. Manjunath, S. K. Mitra, \"Multisensor image fusion using the wavelet "
         "transform\", Graphical Models and Image Processing 57(3):235-245, 1995"),
    ),
    MethodInfo(
        "gff",
        "msgfusion.methods.classical.guided:GuidedFilterFusion",
        "guided filtering fusion: two-scale, saliency weights refined by guided filters",
        ("S. Li, X. Kang, J. Hu, \"Image fusion with guided filtering\", IEEE Transactions on "
         "Image Processing 22(7):2864-2875, 2013"),
    ),
    MethodInfo(
        "latlrr",
        "msgfusion.methods.classical.lowrank:LatLRRFusion",
        "latent low-rank representation: averaged low-rank parts + summed salient parts",
        ("H. Li, X.-J. Wu, \"Infrared and visible image fusion using latent low-rank "
         "representation\", arXiv:1804.08992, 2018; latent LRR: G. Liu, S. Yan, ICCV 2011, pp. "
         "1615-1622"),
    ),
    MethodInfo(
        "wpadcpcnn",
        "msgfusion.methods.classical.pcnn:WPADCPCNNFusion",
        "weighted parameter-adaptive dual-channel PCNN on a multiscale-directional decomposition",
        ("C. Panigrahy, A. Seal, N. K. Mahato, \"MRI and SPECT image fusion using a weighted "
         "parameter adaptive dual channel PCNN\", IEEE Signal Processing Letters 27:690-694, "
         "2020"),
    ),
    MethodInfo(
        "ifcnn",
        "msgfusion.methods.deep.ifcnn:IFCNNMethod",
        "IFCNN: shared conv features, element-wise max, conv reconstruction",
        ("Y. Zhang, Y. Liu, P. Sun, H. Yan, X. Zhao, L. Zhang, \"IFCNN: A general image fusion "
         "framework based on convolutional neural network\", Information Fusion 54:99-118, 2020"),
    ),
    MethodInfo(
        "nestfuse",
        "msgfusion.methods.deep.nestfuse:NestFuseMethod",
        "NestFuse: nest-connection auto-encoder, spatial/channel attention fusion",
        ("H. Li, X.-J. Wu, T. Durrani, \"NestFuse: An infrared and visible image fusion "
         "architecture based on nest connection and spatial/channel attention models\", IEEE "
         "Trans. Instrumentation and Measurement 69(12):9645-9656, 2020"),
    ),
    MethodInfo(
        "fusiondn",
        "msgfusion.methods.deep.fusiondn:FusionDNMethod",
        "FusionDN: densely connected network, adaptive information-preserving loss",
        ("H. Xu, J. Ma, Z. Le, J. Jiang, X. Guo, \"FusionDN: A unified densely connected network "
         "for image fusion\", AAAI 2020, 34(07):12484-12491"),
    ),
    MethodInfo(
        "fusiongan",
        "msgfusion.methods.deep.fusiongan:FusionGANMethod",
        "FusionGAN: conv generator vs discriminator; functional intensity + MR gradients",
        ("J. Ma, W. Yu, P. Liang, C. Li, J. Jiang, \"FusionGAN: A generative adversarial network "
         "for infrared and visible image fusion\", Information Fusion 48:11-26, 2019"),
    ),
    MethodInfo(
        "funfusean",
        "msgfusion.methods.deep.funfusean:FunFuseAnMethod",
        "FunFuseAn: low/high-frequency branches per source, SSIM-based loss",
        ("N. Kumar, N. Hoffmann, M. Oelschlaegel, E. Koch, M. Kirsch, S. Gumhold, \"Structural "
         "similarity based anatomical and functional brain imaging fusion\", MICCAI workshop MBIA "
         "2019, LNCS 11846:121-129 (arXiv:1908.03958)"),
    ),
)
