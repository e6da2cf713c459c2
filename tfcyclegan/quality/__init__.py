"""Quality numbers: metrics (PSNR/SSIM, FID/KID, demo ground truth), classifier (a domain
classifier), evaluate (a model's scores on held-out images).
"""
