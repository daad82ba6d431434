"""Training side of tgo: Norse spiking models, the TGO loss, data, trainer and checkpoints.

Never imports lava, so it runs wherever PyTorch runs (a GPU machine with a newer Python included).
"""
