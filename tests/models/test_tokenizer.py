"""SpectrumAwareProjection/Reprojection against a naive per-band loop written here."""

import warnings

import pytest
import torch

import smartiesviz as sv
from smartiesviz.models.tokenizer import SpectrumAwareReprojection, patchify, unpatchify

S, D = 4, 24


def naive_tokens(
    proj: sv.SpectrumAwareProjection, x: torch.Tensor, bands, scheme="inverse-distance"
):
    """Loop over patches and bands, apply each band's layers, mean, ×12 (the paper's definition)."""
    rb = sv.resolve_bands(bands, scheme, on_unsupported="drop")
    b, _, h, w = x.shape
    out = torch.zeros(b, (h // S) * (w // S), D, dtype=torch.float64)
    n = 0
    for i in range(h // S):
        for j in range(w // S):
            for c_out, c_in in enumerate(rb.keep):
                patch = (
                    x[:, c_in, i * S : (i + 1) * S, j * S : (j + 1) * S].reshape(b, S * S).double()
                )
                for layer, weight in enumerate(rb.weights[c_out].tolist()):
                    if weight:
                        lin = proj.layers[layer]
                        out[:, n] += weight * (patch @ lin.weight.double().T + lin.bias.double())
            n += 1
    return (12.0 * out / len(rb)).float()


@pytest.fixture
def proj():
    torch.manual_seed(0)
    return sv.SpectrumAwareProjection(embed_dim=D, patch_size=S)


@pytest.mark.parametrize(
    ("bands", "channels"),
    [
        ("sentinel2-l2a", 12),
        ("sentinel1-grd", 2),
        ("rgb", 3),
        (["landsat8/B2", "landsat8/B10", "landsat8/B4"], 3),
        (["S2/B04"], 1),
        ([(1000, 1100), "S1/VV", "S2/B8A", "near_infrared_2", "RGB/red"], 5),
    ],
)
def test_tokens_equal_naive_reference(proj, bands, channels):
    x = torch.randn(2, channels, 8, 12)
    tokens = proj(x, bands)
    assert tokens.shape == (2, 6, D)
    torch.testing.assert_close(tokens, naive_tokens(proj, x, bands), atol=1e-5, rtol=1e-5)


def test_dropped_band_is_removed_from_the_input(proj):
    x = torch.randn(1, 13, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = proj(x, "sentinel2-l1c")
    without_b10 = proj(torch.cat([x[:, :10], x[:, 11:]], 1), "sentinel2-l2a")
    torch.testing.assert_close(full, without_b10)
    x[:, 10] = 1e6  # whatever B10 holds, it never reaches the tokens
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.testing.assert_close(proj(x, "sentinel2-l1c"), full)


def test_release_tiling_to_12_slots_leaves_tokens_unchanged(proj):
    x = torch.randn(2, 3, 8, 8)
    tiled = x.repeat(1, 4, 1, 1)  # RGB ×4, as the release batches sensors
    torch.testing.assert_close(
        proj(tiled, ["RGB/red", "RGB/green", "RGB/blue"] * 4), proj(x, "rgb"), atol=1e-5, rtol=1e-5
    )


def test_band_order_follows_the_channels(proj):
    x = torch.randn(1, 3, 8, 8)
    fwd = proj(x, ["S2/B04", "S2/B03", "S2/B02"])
    rev = proj(x.flip(1), ["S2/B02", "S2/B03", "S2/B04"])
    torch.testing.assert_close(fwd, rev)
    assert not torch.allclose(fwd, proj(x, ["S2/B02", "S2/B03", "S2/B04"]))


def test_gradients_reach_only_used_layers(proj):
    x = torch.randn(2, 2, 8, 8)
    proj(x, "S1").sum().backward()
    grads = [
        layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0 for layer in proj.layers
    ]
    assert [i for i, g in enumerate(grads) if g] == [15, 16]


def test_layers_are_17_linear_in_released_order(proj):
    assert len(proj.layers) == 17
    assert all(isinstance(m, torch.nn.Linear) and m.weight.shape == (D, S * S) for m in proj.layers)


def test_errors(proj):
    with pytest.raises(ValueError, match="12 channels but 2 bands"):
        proj(torch.randn(1, 12, 8, 8), "S1")
    with pytest.raises(ValueError, match=r"10×8 is not divisible by the patch size 4.*8×8 or 12×8"):
        proj(torch.randn(1, 2, 10, 8), "S1")
    with pytest.raises(ValueError, match="shape"):
        proj(torch.randn(2, 8, 8), "S1")
    x = torch.randn(1, 2, 8, 8)
    x[0, 1, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf.*VH: 1"):
        proj(x, "S1")
    with pytest.raises(ValueError, match="empty band list"):
        proj(torch.randn(1, 0, 8, 8), [])
    with pytest.raises(TypeError, match="floating-point"):
        proj(torch.ones(1, 2, 8, 8, dtype=torch.int32), "S1")
    with pytest.raises(KeyError, match="unknown sensor"):
        proj(torch.randn(1, 2, 8, 8), "sentinel-3")


def test_reprojection_matches_per_band_layers():
    torch.manual_seed(0)
    head = SpectrumAwareReprojection(in_dim=10, patch_size=S)
    h = torch.randn(2, 5, 10)
    out = head(h, ["S2/B04", "landsat8/B10"])
    assert out.shape == (2, 5, 2, S * S)
    torch.testing.assert_close(out[:, :, 0], head.layers[6](h))
    w = sv.layer_weights("landsat8/B10")
    expected = w[14] * head.layers[14](h) + w[15] * head.layers[15](h)
    torch.testing.assert_close(out[:, :, 1], expected)


def test_patchify_roundtrip_and_order():
    x = torch.arange(2 * 3 * 8 * 12, dtype=torch.float32).reshape(2, 3, 8, 12)
    p = patchify(x, 4)
    assert p.shape == (2, 6, 3, 16)
    torch.testing.assert_close(p[0, 1, 0], x[0, 0, 0:4, 4:8].reshape(16))  # row-major patches
    torch.testing.assert_close(unpatchify(p, (2, 3), 4), x)


def test_bf16_autocast():
    torch.manual_seed(0)
    proj = sv.SpectrumAwareProjection(embed_dim=D, patch_size=S)
    x = torch.randn(2, 12, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = proj(x, "S2")
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), proj(x, "S2"), atol=0.1, rtol=0.05)
