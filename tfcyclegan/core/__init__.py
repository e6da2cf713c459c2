"""The method (Zhu et al. 2017): networks (generators and discriminators), losses (one
function per equation), pool (the history of generated images), schedules (linear decay),
model (CycleGAN's ordered G / D_X / D_Y train_step). Knows nothing of files.
"""
