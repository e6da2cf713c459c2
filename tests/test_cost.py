import pytest

from tfcyclegan.core import cost
from tfcyclegan.core.networks import MobileResnetGenerator, ResnetGenerator


def conv(h, w, k, c_in, c_out):
    """Multiply-adds of a convolution with an h x w output (transposed: an h x w input)."""
    return h * w * k * k * c_in * c_out


def hand_macs(h, w, ngf, n_blocks, mobile):
    """The generator's convolutions one by one, from appendix 7.2 of the paper (and GAN Compression's block)."""
    total = conv(h, w, 7, 3, ngf) + conv(h // 2, w // 2, 3, ngf, 2 * ngf) + conv(h // 4, w // 4, 3, 2 * ngf, 4 * ngf)
    k, q = 4 * ngf, h // 4 * (w // 4)
    block = 2 * (q * 9 * k + q * k * k) if mobile else 2 * q * 9 * k * k
    total += n_blocks * block
    total += conv(h // 4, w // 4, 3, 4 * ngf, 2 * ngf) + conv(h // 2, w // 2, 3, 2 * ngf, ngf)
    return total + conv(h, w, 7, ngf, 3)


CASES = [
    (ResnetGenerator, 64, 9),
    (ResnetGenerator, 64, 6),
    (MobileResnetGenerator, 16, 9),
    (MobileResnetGenerator, 8, 3),
]


@pytest.mark.parametrize("kind,ngf,blocks", CASES)
@pytest.mark.parametrize("h,w", [(256, 256), (64, 96)])
def test_cost_is_the_hand_count_and_the_traced_graph(kind, ngf, blocks, h, w):
    generator = kind(ngf=ngf, n_blocks=blocks)
    counted = cost.cost(generator, h, w)
    mobile = kind is MobileResnetGenerator
    assert counted.macs == hand_macs(h, w, ngf, blocks, mobile)
    assert counted.parameters == generator.count_params()
    # The graph computes c7s1-3 as a 4x4 convolution over 2x2 pixel blocks of the
    # (h + 6) x (w + 6) padded map: (h/2) x (w/2) outputs of 4 x 3 channels from 4 ngf.
    blocked = conv(h // 2, w // 2, 4, 4 * ngf, 12)
    assert cost.traced_macs(generator, h, w) == counted.macs - conv(h, w, 7, ngf, 3) + blocked


def test_mobile_student_costs_a_fraction_of_the_teacher():
    teacher = cost.cost(ResnetGenerator(ngf=64, n_blocks=9), 256)
    student = cost.cost(MobileResnetGenerator(ngf=16, n_blocks=9), 256)
    assert teacher.macs / student.macs >= 15
    assert teacher.parameters == 11_378_179


def test_a_size_the_generator_does_not_keep_is_refused():
    with pytest.raises(ValueError, match="counted an output"):
        cost.cost(MobileResnetGenerator(ngf=4, n_blocks=1), 30, 30)
    assert cost.cost(MobileResnetGenerator(ngf=4, n_blocks=1), 32).macs == hand_macs(32, 32, 4, 1, True)
