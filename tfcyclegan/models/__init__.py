"""Trained generators outside a run: modeldir (.keras model directories), export_format (the
names exports and model directories share), torch_state (.pth read without torch),
pretrained (official PyTorch generators as Keras generators).
"""
