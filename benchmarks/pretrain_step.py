"""One SMARTIES pretraining step: smartiesviz's SmartiesMAE vs a naive reference of the release's algorithm.

Both sides share the *same parameters* (the reference reads the layers of our model), so the
numbers compare algorithms only, and the two losses must agree (printed as a check).

Naive reference (the release's algorithm, written here from the facts file):
  * every image's bands tiled to 12 slots; a (B, 12) layer index per slot;
  * tokenization by per-layer masked assignment of Linear(S², D) outputs into a zeros
    (B, 12, N, D) tensor, token = sum over the 12 slots (= 12 × mean);
  * mixup of tokens, pixel targets and per-position band indices; a' and b' each through the
    encoder and the decoder separately;
  * reprojection by repeating each decoded token over the 12 slots and per-layer masked
    assignment of Linear(D_dec, S²) outputs; loss per patch over slots × pixels.

Peak memory: CPU has no allocator statistics, so a ``TorchDispatchMode`` records every storage an
op creates during the step and a weakref finaliser removes it when it is freed; the peak of the
live bytes is the step's peak *extra* memory (activations, gradients, temporaries) on top of the
parameters and inputs, independent of the malloc implementation.

Run:  python benchmarks/pretrain_step.py [--batch 16] [--repeats 5] [--device cpu|cuda] [--vitb]
"""

from __future__ import annotations

import argparse
import statistics
import time
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from smartiesviz.models.mae import SmartiesMAE
from smartiesviz.models.mixup import masking_indices, random_mixup_mask, random_visible_mask
from smartiesviz.spectrum import resolve_bands


# ---------------------------------------------------------------------- naive reference
def _tile12(x: torch.Tensor, layers: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Tile channels to 12 slots: ``(B, 12, H, W)`` and the ``(B, 12)`` layer index of each slot."""
    reps = -(-12 // x.shape[1])
    idx = list(range(x.shape[1])) * reps
    slots = torch.tensor((layers * reps)[:12], device=x.device)
    return x[:, idx[:12]], slots.expand(x.shape[0], 12)


def _patches(x: torch.Tensor, s: int) -> torch.Tensor:
    """``(B, C, H, W)`` → ``(B, C, N, S²)`` row-major."""
    b, c, h, w = x.shape
    return x.reshape(b, c, h // s, s, w // s, s).permute(0, 1, 2, 4, 3, 5).reshape(b, c, -1, s * s)


def naive_step(model: SmartiesMAE, xa, la, xb, lb, mix, vis, mirrored=True) -> torch.Tensor:
    """Release-style loss for one pair batch (see the module docstring)."""
    s, d = model.patch_size, model.embed_dim
    gh, gw = xa.shape[-2] // s, xa.shape[-1] // s
    pos = model._pos((gh, gw), False, xa)

    def tokenize(x, layers):
        x12, slot_layer = _tile12(x, layers)
        p = _patches(x12, s)  # (B, 12, N, S²)
        emb = torch.zeros(*p.shape[:3], d, dtype=p.dtype, device=p.device)
        for layer in sorted(set(layers)):
            sel = slot_layer == layer  # (B, 12)
            emb[sel] = model.spectrum_projection.layers[layer](p[sel])
        return (
            emb.sum(1) + pos,
            p.transpose(1, 2),
            slot_layer[:, None, :].expand(-1, p.shape[2], -1),
        )

    ta, pa, ia = tokenize(xa, la)  # tokens (B,N,D), targets (B,N,12,S²), layer idx (B,N,12)
    tb, pb, ib = tokenize(xb, lb)
    m = mix[..., None]
    a_tok, a_tgt, a_idx = (
        torch.where(m, ta, tb),
        torch.where(m[..., None], pa, pb),
        torch.where(m, ia, ib),
    )
    if mirrored:
        b_tok, b_tgt, b_idx = (
            torch.where(m, tb, ta),
            torch.where(m[..., None], pb, pa),
            torch.where(m, ib, ia),
        )
    else:
        b_tok, b_tgt, b_idx = tb, pb, ib
    ids_keep, ids_restore = masking_indices(vis, int(vis[0].sum()))

    def branch(tok, tgt, idx):
        dec = model.forward_decoder(model.forward_encoder(tok, ids_keep), ids_restore, (gh, gw))
        rep = dec[:, :, None, :].expand(-1, -1, 12, -1)  # repeat over the 12 slots
        out = torch.zeros_like(tgt)
        for layer in torch.unique(idx).tolist():
            sel = idx == layer
            out[sel] = model.decoder_pred.layers[layer](rep[sel])
        err = (out - tgt).square().mean(dim=(2, 3))  # (B, N)
        hidden = ~vis
        return (err * hidden).sum() / hidden.sum()

    return 0.5 * (branch(a_tok, a_tgt, a_idx) + branch(b_tok, b_tgt, b_idx))


# ---------------------------------------------------------------------- measurement
class PeakMemory(TorchDispatchMode):
    """Peak bytes of storages created (and not yet freed) while the mode is active."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._seen: set[int] = set()

    def _free(self, key: int, nbytes: int) -> None:
        self._seen.discard(key)
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        # views and in-place results share an input's storage: nothing new was allocated
        inputs = {
            a.untyped_storage()._cdata
            for a in tree_flatten((args, kwargs))[0]
            if isinstance(a, torch.Tensor) and a.device.type != "meta"
        }
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                st = t.untyped_storage()
                key = st._cdata
                if key not in self._seen and key not in inputs:
                    self._seen.add(key)
                    self.live += st.nbytes()
                    weakref.finalize(st, self._free, key, st.nbytes())
        self.peak = max(self.peak, self.live)
        return out


def run_step(fn, model) -> float:
    model.zero_grad(set_to_none=True)
    loss = fn()
    loss.backward()
    return float(loss.detach())


def vitb_throughput(device: torch.device, batch: int, steps: int) -> None:
    """ViT-B/16 224² S2+S1 pairs, bf16 autocast, fwd+bwd+AdamW: images (pairs) per second."""
    model = SmartiesMAE().to(device)  # released ViT-B shapes
    opt = torch.optim.AdamW(model.parameters(), lr=1.5e-4)
    xa = torch.randn(batch, 12, 224, 224, device=device)
    xb = torch.randn(batch, 2, 224, 224, device=device)
    s2, s1 = resolve_bands("S2"), resolve_bands("S1")

    def one() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = model(xa, s2, xb, s1).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    one()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        one()
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    print(
        f"ViT-B/16 224^2 bf16 on {device}: {steps * batch / dt:.1f} pairs/s (batch {batch}, {steps} steps)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--img", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--vitb", action="store_true", help="also time ViT-B/16 224² bf16 (meant for a GPU)"
    )
    ap.add_argument("--vitb-batch", type=int, default=64)
    args = ap.parse_args()
    dev = torch.device(args.device)
    torch.manual_seed(0)
    model = SmartiesMAE(
        args.img, 16, 384, 6, 6, decoder_embed_dim=256, decoder_depth=2, decoder_num_heads=8
    ).to(dev)
    B, N = args.batch, (args.img // 16) ** 2
    xa, xb = (
        torch.randn(B, 12, args.img, args.img, device=dev),
        torch.randn(B, 2, args.img, args.img, device=dev),
    )
    la = [int(w.argmax()) for w in resolve_bands("S2").weights]
    lb = [int(w.argmax()) for w in resolve_bands("S1").weights]
    g = torch.Generator().manual_seed(0)
    mix = random_mixup_mask(B, N, 0.5, g).to(dev)
    vis = random_visible_mask(B, N, 0.75, g).to(dev)

    steps = {
        "smartiesviz": lambda: model(xa, "S2", xb, "S1", mixup_mask=mix, visible_mask=vis).loss,
        "naive (release algorithm)": lambda: naive_step(model, xa, la, xb, lb, mix, vis),
    }
    losses = {k: run_step(f, model) for k, f in steps.items()}  # warm-up
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(args.repeats):  # interleaved, to share the machine's noise
        for k, f in steps.items():
            t0 = time.perf_counter()
            run_step(f, model)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times[k].append(time.perf_counter() - t0)
    peaks = {}
    for k, f in steps.items():
        model.zero_grad(set_to_none=True)
        with PeakMemory() as pm:
            f().backward()
        peaks[k] = pm.peak

    print(
        f"config: D 384, depth 6, decoder 256x2, patch 16, {args.img}^2, batch {B} S2(12)+S1(2) pairs, "
        f"mask 0.75, mixup 0.5 mirrored, device {dev}, threads {torch.get_num_threads()}, "
        f"median of {args.repeats} fwd+bwd"
    )
    print(f"{'':28s}{'time (ms)':>12s}{'peak extra MiB':>16s}{'loss':>12s}")
    for k in steps:
        print(
            f"{k:28s}{1e3 * statistics.median(times[k]):12.1f}{peaks[k] / 2**20:16.1f}{losses[k]:12.6f}"
        )
    ours, ref = "smartiesviz", "naive (release algorithm)"
    speed = statistics.median(times[ref]) / statistics.median(times[ours])
    mem = peaks[ours] / peaks[ref]
    print(
        f"speed-up {speed:.2f}x (target >= 1.3x); memory ratio {mem:.2f}x (target <= 0.7x); "
        f"|loss difference| {abs(losses[ours] - losses[ref]):.2e}"
    )
    if args.vitb:
        vitb_throughput(dev, args.vitb_batch, steps=10)


if __name__ == "__main__":
    main()
