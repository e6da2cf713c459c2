"""The official CycleGAN training step in PyTorch, as a child process of `train_step.py --vs-pytorch`.

Runs under a Python that has torch (not the project's venv: torch is no
dependency of tfcyclegan). The networks and the step are those of
junyanz/pytorch-CycleGAN-and-pix2pix (models/networks.py, models/cycle_gan_model.py)
with the options of its CycleGAN training: ResnetGenerator (reflection padding,
InstanceNorm2d(affine=False, track_running_stats=False), so use_bias=True, no
dropout), NLayerDiscriminator (n_layers 3, InstanceNorm), weights N(0, 0.02) and
zero biases, LSGAN, lambda_A = lambda_B = 10, lambda_identity 0.5, image pools of
50, Adam(2e-4, betas (0.5, 0.999)): one Adam for both generators, one for both
discriminators. `optimize_parameters` is the official one: forward of G_A and
G_B with both cycles, backward_G (identity, GAN and cycle losses) with the
discriminators' requires_grad off, the G step, then backward_D_A and backward_D_B
on pooled fakes and the D step. float32, NCHW (PyTorch's default layout).

Protocol (stdin/stdout, one line each): after building and the warm-up steps it
prints one JSON line {"ready": ..., parameter counts, thread count, versions};
then each input line "step K" runs K steps and prints a JSON list of K
[wall seconds, process CPU seconds] pairs; "flops" runs one step under
torch.utils.flop_counter.FlopCounterMode and prints its convolution FLOPs;
"quit" (or end of input) exits.

    /tmp/torchenv/bin/python benchmarks/torch_cyclegan.py --size 128 --blocks 6 --threads 2
"""

import argparse
import itertools
import json
import random
import sys
import time

import torch
from torch import nn


def norm(channels):
    # get_norm_layer("instance")
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResnetBlock(nn.Module):
    """ResnetBlock(dim, "reflect", InstanceNorm2d, use_dropout=False, use_bias=True)."""

    def __init__(self, dim):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=True),
            norm(dim),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=True),
            norm(dim),
        )

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """ResnetGenerator(3, 3, ngf, InstanceNorm2d, use_dropout=False, n_blocks, "reflect")."""

    def __init__(self, ngf=64, n_blocks=6):
        super().__init__()
        model = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(3, ngf, kernel_size=7, padding=0, bias=True),
            norm(ngf),
            nn.ReLU(True),
        ]
        for i in range(2):  # downsampling
            mult = 2**i
            model += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1, bias=True),
                norm(ngf * mult * 2),
                nn.ReLU(True),
            ]
        model += [ResnetBlock(ngf * 4) for _ in range(n_blocks)]
        for i in range(2):  # upsampling
            mult = 2 ** (2 - i)
            model += [
                nn.ConvTranspose2d(
                    ngf * mult, ngf * mult // 2, kernel_size=3, stride=2, padding=1, output_padding=1, bias=True
                ),
                norm(ngf * mult // 2),
                nn.ReLU(True),
            ]
        model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, x):
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    """NLayerDiscriminator(3, ndf, n_layers=3, InstanceNorm2d): the 70x70 PatchGAN."""

    def __init__(self, ndf=64, n_layers=3):
        super().__init__()
        kw, padw = 4, 1
        sequence = [nn.Conv2d(3, ndf, kernel_size=kw, stride=2, padding=padw), nn.LeakyReLU(0.2, True)]
        nf_mult = 1
        for n in range(1, n_layers):
            nf_mult_prev, nf_mult = nf_mult, min(2**n, 8)
            sequence += [
                nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=2, padding=padw, bias=True),
                norm(ndf * nf_mult),
                nn.LeakyReLU(0.2, True),
            ]
        nf_mult_prev, nf_mult = nf_mult, min(2**n_layers, 8)
        sequence += [
            nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=1, padding=padw, bias=True),
            norm(ndf * nf_mult),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * nf_mult, 1, kernel_size=kw, stride=1, padding=padw),
        ]
        self.model = nn.Sequential(*sequence)

    def forward(self, x):
        return self.model(x)


def init_weights(net, gain=0.02):
    """init_weights(net, "normal", 0.02): conv weights N(0, gain), biases 0."""

    def init(m):
        if hasattr(m, "weight") and m.weight is not None and "Conv" in m.__class__.__name__:
            nn.init.normal_(m.weight.data, 0.0, gain)
            if m.bias is not None:
                nn.init.constant_(m.bias.data, 0.0)

    net.apply(init)


class GANLoss(nn.Module):
    """GANLoss("lsgan"): MSE against a target of 1 (real) or 0 (fake) the shape of the prediction."""

    def __init__(self):
        super().__init__()
        self.register_buffer("real_label", torch.tensor(1.0))
        self.register_buffer("fake_label", torch.tensor(0.0))
        self.loss = nn.MSELoss()

    def __call__(self, prediction, target_is_real):
        target = (self.real_label if target_is_real else self.fake_label).expand_as(prediction)
        return self.loss(prediction, target)


class ImagePool:
    """util/image_pool.py: a history of fakes, each returned image from the pool with probability 1/2 once full."""

    def __init__(self, pool_size):
        self.pool_size, self.num_imgs, self.images = pool_size, 0, []

    def query(self, images):
        if self.pool_size == 0:
            return images
        return_images = []
        for image in images:
            image = torch.unsqueeze(image.data, 0)
            if self.num_imgs < self.pool_size:
                self.num_imgs += 1
                self.images.append(image)
                return_images.append(image)
            elif random.uniform(0, 1) > 0.5:
                random_id = random.randint(0, self.pool_size - 1)
                tmp = self.images[random_id].clone()
                self.images[random_id] = image
                return_images.append(tmp)
            else:
                return_images.append(image)
        return torch.cat(return_images, 0)


def set_requires_grad(nets, requires_grad):
    for net in nets:
        for param in net.parameters():
            param.requires_grad = requires_grad


class CycleGANModel:
    """models/cycle_gan_model.py, training part: lambda_A = lambda_B = 10, lambda_identity 0.5."""

    def __init__(self, n_blocks, ngf=64, ndf=64, pool_size=50, lr=2e-4, beta1=0.5):
        self.netG_A, self.netG_B = ResnetGenerator(ngf, n_blocks), ResnetGenerator(ngf, n_blocks)
        self.netD_A, self.netD_B = NLayerDiscriminator(ndf), NLayerDiscriminator(ndf)
        for net in (self.netG_A, self.netG_B, self.netD_A, self.netD_B):
            init_weights(net)
            net.train()
        self.lambda_A = self.lambda_B = 10.0
        self.lambda_idt = 0.5
        self.fake_A_pool, self.fake_B_pool = ImagePool(pool_size), ImagePool(pool_size)
        self.criterionGAN, self.criterionCycle, self.criterionIdt = GANLoss(), nn.L1Loss(), nn.L1Loss()
        g_params = itertools.chain(self.netG_A.parameters(), self.netG_B.parameters())
        d_params = itertools.chain(self.netD_A.parameters(), self.netD_B.parameters())
        self.optimizer_G = torch.optim.Adam(g_params, lr=lr, betas=(beta1, 0.999))
        self.optimizer_D = torch.optim.Adam(d_params, lr=lr, betas=(beta1, 0.999))

    def set_input(self, real_A, real_B):
        self.real_A, self.real_B = real_A, real_B

    def forward(self):
        self.fake_B = self.netG_A(self.real_A)  # G_A(A)
        self.rec_A = self.netG_B(self.fake_B)  # G_B(G_A(A))
        self.fake_A = self.netG_B(self.real_B)  # G_B(B)
        self.rec_B = self.netG_A(self.fake_A)  # G_A(G_B(B))

    def backward_D_basic(self, netD, real, fake):
        loss_D_real = self.criterionGAN(netD(real), True)
        loss_D_fake = self.criterionGAN(netD(fake.detach()), False)
        loss_D = (loss_D_real + loss_D_fake) * 0.5
        loss_D.backward()
        return loss_D

    def backward_D_A(self):
        fake_B = self.fake_B_pool.query(self.fake_B)
        self.loss_D_A = self.backward_D_basic(self.netD_A, self.real_B, fake_B)

    def backward_D_B(self):
        fake_A = self.fake_A_pool.query(self.fake_A)
        self.loss_D_B = self.backward_D_basic(self.netD_B, self.real_A, fake_A)

    def backward_G(self):
        lambda_idt, lambda_A, lambda_B = self.lambda_idt, self.lambda_A, self.lambda_B
        self.idt_A = self.netG_A(self.real_B)
        self.loss_idt_A = self.criterionIdt(self.idt_A, self.real_B) * lambda_B * lambda_idt
        self.idt_B = self.netG_B(self.real_A)
        self.loss_idt_B = self.criterionIdt(self.idt_B, self.real_A) * lambda_A * lambda_idt
        self.loss_G_A = self.criterionGAN(self.netD_A(self.fake_B), True)
        self.loss_G_B = self.criterionGAN(self.netD_B(self.fake_A), True)
        self.loss_cycle_A = self.criterionCycle(self.rec_A, self.real_A) * lambda_A
        self.loss_cycle_B = self.criterionCycle(self.rec_B, self.real_B) * lambda_B
        self.loss_G = (
            self.loss_G_A + self.loss_G_B + self.loss_cycle_A + self.loss_cycle_B + self.loss_idt_A + self.loss_idt_B
        )
        self.loss_G.backward()

    def optimize_parameters(self):
        self.forward()
        set_requires_grad([self.netD_A, self.netD_B], False)
        self.optimizer_G.zero_grad()
        self.backward_G()
        self.optimizer_G.step()
        set_requires_grad([self.netD_A, self.netD_B], True)
        self.optimizer_D.zero_grad()
        self.backward_D_A()
        self.backward_D_B()
        self.optimizer_D.step()


def parameter_counts(model):
    def count(net):
        return sum(p.numel() for p in net.parameters())

    return {"G": count(model.netG_A), "D": count(model.netD_A)}


def step_flops(model):
    """Convolution FLOPs (forward and backward) of one step, as torch's FlopCounterMode counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        model.optimize_parameters()
    ops = torch.ops.aten
    conv_ops = {ops.convolution, ops._convolution, ops.convolution_backward, ops.mkldnn_convolution}
    return sum(v for op, v in counter.get_flop_counts()["Global"].items() if op in conv_ops or "conv" in str(op))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, required=True, help="torch.set_num_threads")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    random.seed(0)
    model = CycleGANModel(args.blocks)
    shape = (args.batch, 3, args.size, args.size)
    model.set_input(torch.rand(shape) * 2 - 1, torch.rand(shape) * 2 - 1)
    for _ in range(args.warmup):
        model.optimize_parameters()
    ready = {
        "ready": True,
        "params": parameter_counts(model),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "mkldnn": torch.backends.mkldnn.is_available(),
    }
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        command = line.split()
        if not command or command[0] == "quit":
            break
        if command[0] == "flops":
            print(json.dumps(step_flops(model)), flush=True)
            continue
        times = []
        for _ in range(int(command[1])):
            wall, cpu = time.perf_counter(), time.process_time()
            model.optimize_parameters()
            model.loss_G.item()
            times.append((time.perf_counter() - wall, time.process_time() - cpu))
        print(json.dumps(times), flush=True)


if __name__ == "__main__":
    main()
