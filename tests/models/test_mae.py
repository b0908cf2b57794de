"""SmartiesMAE: shapes, routing of the mixed tokens, loss equivalences with the release, features."""

from __future__ import annotations

import pytest
import timm
import torch

import smartiesviz
from smartiesviz.models.mixup import masking_indices, random_mixup_mask, random_visible_mask
from smartiesviz.spectrum import get_sensor

IMG = 32  # as in conftest.py
N = (IMG // 8) ** 2


def _masks(b=3, seed=0, ratio=0.5, mask_ratio=0.75):
    g = torch.Generator().manual_seed(seed)
    return random_mixup_mask(b, N, ratio, g), random_visible_mask(b, N, mask_ratio, g)


def _masked_mean(err, vis):
    return err[~vis].mean()


def _patch_err(recon, target):
    b, c, h, w = target.shape
    return (
        (recon - target).square().reshape(b, c, h // 8, 8, w // 8, 8).mean((1, 3, 5)).reshape(b, -1)
    )


def _release_decoded(model, x_a, x_b, mix, vis, mode):
    """Decoded tokens of a' and b', each run through encoder and decoder on its own (as the release)."""
    grid = model.patch_grid(x_a)
    ta, tb = model.embed(x_a, "S2"), model.embed(x_b, "S1")
    m = mix[..., None]
    a_mix = torch.where(m, ta, tb)
    b_mix = torch.where(m, tb, ta) if mode == "mirrored" else tb
    ids_keep, ids_restore = masking_indices(vis, int(vis[0].sum()))
    dec = [
        model.forward_decoder(model.forward_encoder(t, ids_keep), ids_restore, grid)
        for t in (a_mix, b_mix)
    ]
    return dec


def test_shapes_masks_and_own_bands(model, pair):
    xa, xb = pair
    out = model(xa, "S2", xb, "S1", generator=torch.Generator().manual_seed(0))
    assert out.recon_a.shape == (3, 12, IMG, IMG) and out.recon_b.shape == (3, 2, IMG, IMG)
    assert out.visible_mask.shape == (3, N) and (out.visible_mask.sum(1) == N // 4).all()
    assert (out.mixup_mask.sum(1) == N // 2).all()
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    # an L1C input with B10 keeps 12 bands: B10 has no layer and is dropped from the reconstruction
    with pytest.warns(UserWarning, match="B10"):
        out = model(torch.randn(3, 13, IMG, IMG), "sentinel2-l1c", xb, "S1")
    assert out.recon_a.shape[1] == 12


def test_mirrored_loss_equals_direct_and_release_recomputation(model, pair):
    xa, xb = pair
    mix, vis = _masks()
    out = model(xa, "S2", xb, "S1", mixup_mask=mix, visible_mask=vis)
    # 1) from the returned reconstructions, on masked positions
    direct = 0.5 * (
        _masked_mean(_patch_err(out.recon_a, xa), vis)
        + _masked_mean(_patch_err(out.recon_b, xb), vis)
    )
    torch.testing.assert_close(out.loss, direct)
    # 2) the release's 0.5 (L_a' + L_b'): a' and b' decoded separately, each position scored with
    #    the bands and targets of the sensor it came from
    dec_a, dec_b = _release_decoded(model, xa, xb, mix, vis, "mirrored")
    grid = model.patch_grid(xa)
    err_a = torch.where(
        mix,
        _patch_err(model.reconstruct(dec_a, "S2", grid), xa),
        _patch_err(model.reconstruct(dec_a, "S1", grid), xb),
    )
    err_b = torch.where(
        mix,
        _patch_err(model.reconstruct(dec_b, "S1", grid), xb),
        _patch_err(model.reconstruct(dec_b, "S2", grid), xa),
    )
    torch.testing.assert_close(
        out.loss, 0.5 * (_masked_mean(err_a, vis) + _masked_mean(err_b, vis))
    )
    # full reconstruction: where b' holds a's token, recon_a comes from b's decoded token
    recon_from_b = model.reconstruct(dec_b, "S2", grid)
    pos = torch.nonzero(~mix[0]).flatten()[0]
    r, c = divmod(int(pos), grid[1])
    torch.testing.assert_close(
        out.recon_a[0, :, r * 8 : r * 8 + 8, c * 8 : c * 8 + 8],
        recon_from_b[0, :, r * 8 : r * 8 + 8, c * 8 : c * 8 + 8],
    )


def test_as_released_loss_equals_release_recomputation(model, pair):
    xa, xb = pair
    mix, vis = _masks(seed=4)
    out = model(xa, "S2", xb, "S1", mixup_mask=mix, visible_mask=vis, mixup_mode="as-released")
    dec_a, dec_b = _release_decoded(model, xa, xb, mix, vis, "as-released")
    grid = model.patch_grid(xa)
    err_a = torch.where(
        mix,
        _patch_err(model.reconstruct(dec_a, "S2", grid), xa),
        _patch_err(model.reconstruct(dec_a, "S1", grid), xb),
    )
    l_b = _masked_mean(_patch_err(model.reconstruct(dec_b, "S1", grid), xb), vis)
    torch.testing.assert_close(out.loss, 0.5 * (_masked_mean(err_a, vis) + l_b))
    # b' = b: recon_b is exactly b reconstructed alone with the same visible mask
    alone = model(xb, "S1", visible_mask=vis)
    torch.testing.assert_close(out.recon_b, alone.recon_a)
    mirrored = model(xa, "S2", xb, "S1", mixup_mask=mix, visible_mask=vis)
    assert not torch.allclose(out.loss, mirrored.loss)


@pytest.mark.filterwarnings("ignore:dropping band")
def test_reconstruct_equals_per_band_reprojection(model):
    from smartiesviz.models.tokenizer import unpatchify

    dec = torch.randn(2, N, 32)
    for bands in ("S2", "S1", "landsat8"):
        ref = unpatchify(model.decoder_pred(dec, bands), (4, 4), 8)
        torch.testing.assert_close(model.reconstruct(dec, bands, (4, 4)), ref, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="differ"):
        model.patch_errors(torch.zeros(1, 2, 8, 8), torch.zeros(1, 3, 8, 8))


def test_patch_error_gradient(model):
    recon = torch.randn(2, 3, 16, 8, dtype=torch.float64, requires_grad=True)
    target = torch.randn(2, 3, 16, 8, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda r: model.patch_errors(r, target), (recon,))
    torch.testing.assert_close(model.patch_errors(recon, target), _patch_err(recon, target))


def test_single_image_and_no_mixup(model, pair):
    xa, xb = pair
    _, vis = _masks()
    single = model(xa, "S2", visible_mask=vis)
    assert single.recon_b is None and single.mixup_mask.all()
    torch.testing.assert_close(single.loss, _masked_mean(_patch_err(single.recon_a, xa), vis))
    # ratio 0: a' = a, so a's reconstruction is the single-image one
    paired = model(xa, "S2", xb, "S1", mixup_ratio=0.0, visible_mask=vis)
    assert paired.mixup_mask.all()
    torch.testing.assert_close(paired.recon_a, single.recon_a)


def test_generator_reproducibility_and_errors(model, pair):
    xa, xb = pair
    o1 = model(xa, "S2", xb, "S1", generator=torch.Generator().manual_seed(7))
    o2 = model(xa, "S2", xb, "S1", generator=torch.Generator().manual_seed(7))
    assert torch.equal(o1.visible_mask, o2.visible_mask) and torch.equal(o1.loss, o2.loss)
    with pytest.raises(ValueError, match="bands_b"):
        model(xa, "S2", xb)
    with pytest.raises(ValueError, match="co-registered"):
        model(xa, "S2", xb[:, :, :16], "S1")
    with pytest.raises(ValueError, match="same number of positions"):
        vis = torch.zeros(3, N, dtype=torch.bool)
        vis[0, :3] = True
        model(xa, "S2", visible_mask=vis)
    with pytest.raises(ValueError, match="divisible"):
        model.encode(torch.randn(1, 2, 30, 32), "S1")
    with pytest.raises(ValueError, match="bands_b, mixup_mask given without a second image x_b"):
        model(xa, "S2", bands_b="S1", mixup_mask=torch.ones(3, N, dtype=torch.bool))
    with pytest.raises(ValueError, match="mixup_mode must be one of 'mirrored', 'as-released'"):
        model(xa, "S2", mixup_mode="paper")
    with pytest.raises(ValueError, match="pos_embed_mode must be one of 'sincos', 'bicubic'"):
        smartiesviz.SmartiesMAE(img_size=32, patch_size=8, pos_embed_mode="learned")


def test_gradients_reach_the_used_layers_only(model, pair):
    xa, xb = pair
    model(xa, "S2", xb, "S1").loss.backward()
    proj = model.spectrum_projection.layers
    used = {
        i
        for i in range(17)
        if proj[i].weight.grad is not None and proj[i].weight.grad.abs().sum() > 0
    }
    assert used == set(range(17)) - {2, 3, 5}  # RGB layers unused by an S2/S1 pair
    assert model.mask_token.grad.abs().sum() > 0 and model.cls_token.grad.abs().sum() > 0


def test_encode_features_and_any_grid(model, pair):
    xa, _ = pair
    feats = model.encode(xa, "S2")
    assert feats.shape == (3, 1 + N, 64)
    torch.testing.assert_close(model.cls_features(xa, "S2"), feats[:, 0])
    torch.testing.assert_close(model.pooled_features(xa, "S2"), feats[:, 1:].mean(1))
    fmap = model.patch_feature_map(xa, "S2", token_norm="post-norm")
    assert fmap.shape == (3, 64, 4, 4)
    torch.testing.assert_close(fmap[:, :, 1, 2], feats[:, 1 + 1 * 4 + 2])  # row-major positions
    pre = model.forward_encoder(model.embed(xa, "S2"), token_norm="pre-norm")
    torch.testing.assert_close(model.patch_feature_map(xa, "S2")[:, :, 1, 2], pre[:, 1 + 1 * 4 + 2])
    wide = model.encode(torch.randn(2, 12, 32, 48), "S2")  # non-square, not the default grid
    assert wide.shape == (2, 1 + 4 * 6, 64) and torch.isfinite(wide).all()
    # "bicubic" mode is the identity at the default grid
    model.pos_embed_mode = "bicubic"
    torch.testing.assert_close(model.encode(xa, "S2"), feats)


def test_fusion_methods(model, pair):
    xa, xb = pair
    stacked_bands = [f"sentinel2-l2a/{b.name}" for b in get_sensor("S2").bands] + [
        "sentinel1-grd/VV",
        "sentinel1-grd/VH",
    ]
    stack = model.fuse_features(xa, "S2", xb, "S1", method="stack")
    torch.testing.assert_close(
        stack, model.cls_features(torch.cat([xa, xb], 1), stacked_bands), atol=1e-5, rtol=1e-4
    )
    concat = model.fuse_features(xa, "S2", xb, "S1", method="concat", pool="mean")
    torch.testing.assert_close(
        concat, torch.cat([model.pooled_features(xa, "S2"), model.pooled_features(xb, "S1")], 1)
    )
    mix = random_mixup_mask(3, N, 0.5, torch.Generator().manual_seed(0))
    fused = model.fuse_features(xa, "S2", xb, "S1", method="mixup", mixup_mask=mix)
    assert fused.shape == (3, 128)
    none_mixed = model.fuse_features(
        xa, "S2", xb, "S1", method="mixup", mixup_mask=torch.ones(3, N, dtype=torch.bool)
    )
    torch.testing.assert_close(none_mixed, model.fuse_features(xa, "S2", xb, "S1", method="concat"))
    with pytest.raises(ValueError, match="method"):
        model.fuse_features(xa, "S2", xb, "S1", method="sum")
    with pytest.raises(ValueError, match="pool must be one of 'cls', 'mean'"):
        model.fuse_features(xa, "S2", xb, "S1", pool="max")


def test_bf16_autocast(model, pair):
    xa, xb = pair
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(xa, "S2", xb, "S1", generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert model.blocks[0].attn.qkv.weight.grad is not None


def test_init_follows_mae(make_model):
    m = make_model(depth=1)
    assert torch.equal(m.norm.weight, torch.ones(64)) and torch.equal(
        m.blocks[0].attn.qkv.bias, torch.zeros(192)
    )
    w = m.blocks[0].mlp.fc1.weight
    bound = (6 / (w.shape[0] + w.shape[1])) ** 0.5  # xavier-uniform
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
    assert 0.005 < m.cls_token.std() < 0.05


def test_factories_and_timm_names():
    base = smartiesviz.smarties_vit_base_patch16(depth=1, decoder_depth=1)
    assert (base.embed_dim, base.patch_size, base.img_size, base.num_heads) == (768, 16, 224, 12)
    assert base.decoder_embed_dim == 512 and len(base.decoder_blocks) == 1
    with torch.device("meta"):
        large = smartiesviz.smarties_vit_large_patch16(img_size=96)
    assert (large.embed_dim, len(large.blocks), large.num_heads, large.img_size) == (
        1024,
        24,
        16,
        96,
    )
    tiny = smartiesviz.smarties_vit_tiny_patch8()
    assert (tiny.embed_dim, tiny.patch_size, tiny.img_size) == (192, 8, 64)
    assert smartiesviz.smarties_vit_small_patch16(depth=1).embed_dim == 384
    with pytest.raises(ValueError, match="never downloads"):
        smartiesviz.smarties_vit_tiny_patch8(pretrained=True)
    # the MAE is not a timm classifier: only the smarties_encoder_vit_* names are timm models
    assert timm.list_models("smarties_vit_*") == [] and timm.list_models("smarties_encoder_vit_*")


@pytest.mark.slow
def test_compiles_as_one_graph_without_host_syncs(model, pair):
    """fullgraph=True fails on any graph break, e.g. a .item()/torch.unique host sync."""
    from smartiesviz.spectrum import resolve_bands

    xa, xb = pair
    s2, s1 = resolve_bands("S2"), resolve_bands("S1")
    step = torch.compile(lambda a, b: model(a, s2, b, s1).loss, fullgraph=True, backend="eager")
    torch.manual_seed(0)
    loss = step(xa, xb)
    assert torch.isfinite(loss)


def test_explicit_target_bands_reconstruct_what_the_input_lacked():
    torch.manual_seed(0)
    model = smartiesviz.smarties_vit_tiny_patch8(img_size=16)
    full = torch.randn(2, 12, 16, 16)
    subset = ["S2/B04", "S2/B03", "S2/B02"]
    x_rgb = full[:, [3, 2, 1]]
    g = torch.Generator().manual_seed(0)
    out = model(x_rgb, subset, target_a=full, target_bands_a="sentinel2-l2a", generator=g)
    assert out.recon_a.shape == (2, 12, 16, 16)
    err = model.patch_errors(out.recon_a, full)
    torch.testing.assert_close(out.loss, model.masked_mean(err, out.visible_mask))
    out.loss.backward()  # the reprojection layers of bands absent from the input get gradients
    assert model.decoder_pred.layers[9].weight.grad.abs().sum() > 0  # B08 (NIR)
    with pytest.raises(ValueError, match="without target_bands_a"):
        model(x_rgb, subset, target_a=full)
    with pytest.raises(ValueError, match="5 channels but target_bands_a describe 12"):
        model(x_rgb, subset, target_a=full[:, :5], target_bands_a="S2")
