"""Where images come from and how they reach the model: imagefiles (listing, robust
decoding, pixel conversions), pipeline (tf.data batches), splits (split folders, which images
are scored or shown, which are readable), datasets (domains: folders, Berkeley sets, verified
downloads), demo (the offline flat <-> striped pair).
"""
