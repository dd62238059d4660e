"""The deep methods MsgFusion was compared with (Wen et al., IEEE TMM 26:944-957, 2024).

All five are trained here (no pretrained weights or original training data are available offline).

One module per method (IFCNN, NestFuse, FusionDN, FusionGAN, FunFuseAn), each with its network and
its :class:`~msgfusion.methods.deep.base.Network`; :mod:`.base` holds the shared adapter (shipped
weights, batching, inference). How each is trained (loss, settings, ``msgfusion train-baseline``)
lives beside the trainer, in :mod:`msgfusion.train.recipes` and :mod:`msgfusion.train.baselines`.
"""
