"""Trained generators outside a run: modeldir (.keras model directories), export_format (the
names exports and model directories share), metadata (metadata.json's one schema), publish
(export folders and model directories landed all or nothing), identify (what a path holds,
and the one table of Keras generator loaders), torch_state (.pth read without torch),
pretrained (official PyTorch generators as Keras generators).
"""
