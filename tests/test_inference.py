"""Inference copies: the same function as the trained model, and the caller's model untouched."""

from __future__ import annotations

import torch
from torch import nn

from worldmodels.flops import count_flops
from worldmodels.inference import SubpixelConv, fold_upsample_convs, inference_copy


def test_a_subpixel_conv_equals_upsampling_then_convolving_with_the_same_flops():
    torch.manual_seed(0)
    ref = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(5, 3, 3, padding=1))
    x = torch.randn(2, 5, 6, 7)
    folded = fold_upsample_convs(nn.Sequential(*list(ref)))
    assert len(folded) == 1 and isinstance(folded[0], SubpixelConv)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), ref(x), atol=1e-5, rtol=1e-5)
        assert count_flops(lambda: folded(x)) == count_flops(lambda: ref(x))


def test_only_nearest_2x_upsampling_before_a_3x3_conv_is_folded():
    keep = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(2, 2, 3, padding=1),
                         nn.Upsample(scale_factor=2), nn.Conv2d(2, 2, 1),
                         nn.Upsample(scale_factor=3), nn.Conv2d(2, 2, 3, padding=1))
    folded = fold_upsample_convs(nn.Sequential(*list(keep)))
    assert [type(m) for m in folded] == [type(m) for m in keep]


def test_the_inference_copy_decodes_like_the_model_and_leaves_it_unchanged(tiny_checkpoint):
    from worldmodels.world_model import WorldModel

    model = WorldModel.load(tiny_checkpoint)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = inference_copy(model, channels_last=True)
    z = torch.randn(3, model.cfg.autoencoder.latent_channels, 16, 16)
    assert (fast.decode(z).int() - model.decode(z).int()).abs().max() <= 1     # uint8 rounding at most
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert next(model.parameters()).requires_grad
    assert not any(isinstance(m, SubpixelConv) for m in model.modules())
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous()                                          # not switched to channels-last
