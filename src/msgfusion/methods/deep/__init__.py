"""The deep methods MsgFusion was compared with (Wen et al., IEEE TMM 26:944-957, 2024).

All five are trained here (no pretrained weights or original training data are available offline).

One module per method (IFCNN, NestFuse, FusionDN, FusionGAN, FunFuseAn), each with its network, its
loss and its :class:`~msgfusion.methods.deep.base.Recipe`; :mod:`.base` holds the shared adapter
(shipped weights, batching, inference) and :mod:`.training` the ``msgfusion train-baseline`` logic.
"""
