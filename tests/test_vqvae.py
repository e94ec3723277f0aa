"""The VQ-VAE (van den Oord et al. 2017): nearest-codebook quantization, straight-through gradients,
the commitment loss, EMA codebook updates, dead-code restarts, exact resume, the CLI and compression."""

import json

import numpy as np
import pytest
import torch

import aekit
from aekit import Autoencoder, ConfigError, ModelConfig, TrainConfig, Trainer
from aekit import compress as C
from aekit.train import Interrupted
from aekit.variants.vqvae import VQVAE, nearest, perplexity
from helpers import InterruptAt, run_cli


def _model(arch="mlp", seed=0, **options):
    torch.manual_seed(seed)
    base = {"input_dim": 64, "hidden": (16,), "latent": 6}
    if arch == "conv":  # 8x8 -> 4x4 -> 2x2: 4 positions of 3 channels
        base.update(image_shape=(1, 8, 8), architecture="conv", hidden=(4, 8), latent=12)
    model = Autoencoder(ModelConfig(variant="vq-vae", options=options, **base))
    assert isinstance(model.variant, VQVAE)
    return model


def _brute_force(vectors, codebook):
    """The index of the nearest codebook row to each vector, by the distances themselves (float64)."""
    v, e = np.asarray(vectors, np.float64), np.asarray(codebook, np.float64)
    return np.linalg.norm(v[:, None, :] - e[None, :, :], axis=2).argmin(1)


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_quantization_picks_the_nearest_codebook_vector(arch):
    model = _model(arch, codebook_size=16, code_dim=3).eval()
    v = model.variant
    h = torch.randn(20, model.config.latent)
    book = v.codebook.float().numpy()
    if arch == "conv":  # each position of the channel-major (3, 2, 2) map is a vector
        vectors = h.numpy().reshape(20, 3, 4).transpose(0, 2, 1).reshape(-1, 3)
        assert v.code_shape == (3, 2, 2) and v.groups == 4
    else:  # consecutive values
        vectors = h.numpy().reshape(-1, 3)
        assert v.code_shape == (2, 3) and v.groups == 2
    idx = v.indices(h).numpy()
    np.testing.assert_array_equal(idx.reshape(-1), _brute_force(vectors, book))
    z = v.encode_deterministic(h)
    np.testing.assert_array_equal(v.vectors(z).numpy(), book[idx.reshape(-1)])  # exactly the codebook's vectors
    np.testing.assert_array_equal(v.codes(v.vectors(h)).numpy(), h.numpy())  # vectors() and codes() invert
    zb, _ = v.bottleneck(h)  # the straight-through code is exactly z_q forward
    assert torch.equal(zb, z)
    assert torch.equal(nearest(torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]])), torch.tensor([0]))


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_the_straight_through_gradient_is_the_decoders_gradient_at_z_q(arch, digits01):
    """The reconstruction term's gradient of the encoder's weights equals the gradient with the quantizer
    replaced by the identity at z_q: dL/dz at z = z_q, passed on to z_e unchanged."""
    model = _model(arch, codebook_size=8, commitment=0.0).eval()  # eval: the codebook stays as it is
    x = torch.from_numpy(digits01[:32])
    params = list(model.encoder.parameters())
    grads = torch.autograd.grad(model(x).losses["recon"], params)
    h = model.encoder(model._to_encoder(x))
    z_q = model.variant.encode_deterministic(h).detach().requires_grad_()
    logits = model.decoder(z_q).reshape(x.shape)
    (dz,) = torch.autograd.grad(model.reconstruction_nll(logits, x), z_q)
    expected = torch.autograd.grad(h, params, grad_outputs=dz)
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-7)
    assert all(g.abs().sum() > 0 for g in grads)


def test_the_commitment_and_codebook_losses_are_their_formulas(digits01):
    x = torch.from_numpy(digits01[:16])
    for ema in (True, False):
        model = _model(codebook_size=8, commitment=0.3, ema=ema).eval()
        out = model(x)
        z_e = model.encoder(x)
        z_q = model.encode(x)
        sq = float(((z_e - z_q) ** 2).sum().detach()) / len(x)
        assert float(out.losses["commitment"].detach()) == pytest.approx(0.3 * sq, rel=1e-5)
        assert ("codebook" in out.losses) is not ema
        if not ema:
            assert float(out.losses["codebook"].detach()) == pytest.approx(sq, rel=1e-5)
            out.loss.backward()  # the codebook term moves the codebook; the decoder's gradient does not reach it
            used = torch.unique(model.variant.indices(z_e))
            g = model.variant.codebook.grad
            assert g is not None and (g[used].abs().sum(1) > 0).all()
            unused = torch.ones(8, dtype=torch.bool)
            unused[used] = False
            assert (g[unused] == 0).all()


def test_one_ema_update_is_the_papers_formulas():
    torch.manual_seed(1)
    model = _model(codebook_size=3, code_dim=2, ema_decay=0.9, epsilon=1e-3, dead_restart=0)
    v = model.variant
    rng = np.random.default_rng(0)
    N0, m0 = rng.uniform(0.5, 3.0, 3), rng.normal(size=(3, 2))
    v.cluster_size.copy_(torch.from_numpy(N0))
    v.embed_sum.copy_(torch.from_numpy(m0))
    z = rng.normal(size=(7, 2)).astype(np.float32)
    idx = np.array([0, 0, 2, 0, 2, 2, 2])  # code 1 unused
    v.learn(torch.from_numpy(z), torch.from_numpy(idx))
    g, eps, K = 0.9, 1e-3, 3
    n_i = np.bincount(idx, minlength=3)
    N = g * N0 + (1 - g) * n_i
    m = g * m0 + (1 - g) * np.stack([z[idx == i].astype(np.float64).sum(0) for i in range(3)])
    n = N.sum()
    e = m / ((N + eps) / (n + K * eps) * n)[:, None]
    np.testing.assert_allclose(v.cluster_size.numpy(), N, rtol=1e-12)
    np.testing.assert_allclose(v.embed_sum.numpy(), m, rtol=1e-12)
    np.testing.assert_allclose(v.codebook.numpy(), e, rtol=1e-12)
    assert v.epoch_counts.tolist() == n_i.tolist()


@pytest.mark.parametrize("ema", [True, False])
def test_dead_codes_are_moved_onto_encoder_outputs_and_become_used(ema):
    torch.manual_seed(0)
    options = {"codebook_size": 4, "dead_restart": 2, "ema": ema}
    model = Autoencoder(ModelConfig(variant="vq-vae", input_dim=4, hidden=(8,), latent=2, options=options))
    v = model.variant
    assert v.unused.tolist() == [0] * 4
    with torch.no_grad():
        v.codebook[:] = torch.tensor([[0.0, 0.0], [1.0, 1.0], [100.0, 100.0], [-100.0, 100.0]]).to(v.codebook)
        if ema:
            v.embed_sum.copy_(v.codebook)
    z = torch.tensor([[0.1, 0.0], [0.9, 1.0], [3.0, -3.0], [-3.0, -3.0], [0.0, 0.2]])
    for step in range(2):
        idx = nearest(z, v.codebook.float())
        assert set(idx.tolist()) == {0, 1}
        v.learn(z, idx)
        if step == 0:
            assert v.unused.tolist() == [0, 0, 1, 1] and int(v.epoch_restarts) == 0
    assert int(v.epoch_restarts) == 2 and v.unused.tolist() == [0, 0, 0, 0]
    moved = v.codebook[2:].float()
    assert all(any(torch.equal(row, zi) for zi in z) for row in moved)  # each onto a vector of the batch
    assert not torch.equal(moved[0], moved[1])  # distinct vectors while the batch has enough
    if ema:
        assert v.cluster_size[2:].tolist() == [1.0, 1.0] and torch.equal(v.embed_sum[2:], v.codebook[2:])
    assert {2, 3} <= set(nearest(z, v.codebook.float()).tolist())  # the moved codes are chosen now


def _blobs(n=400, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2.0, (4, 8))
    labels = rng.integers(0, 4, n)
    return (centres[labels] + rng.normal(0, 0.05, (n, 8))).astype(np.float32), labels


def test_four_blobs_with_four_codes_end_with_every_code_used_and_a_low_error():
    x, labels = _blobs()
    torch.manual_seed(0)
    model = Autoencoder(
        ModelConfig(
            variant="vq-vae", input_dim=8, hidden=(32,), latent=2, options={"codebook_size": 4, "dead_restart": 5}
        )
    )
    t = torch.from_numpy(x)
    history = Trainer(model, TrainConfig(epochs=40, batch_size=50, lr=3e-3)).fit(t)
    idx = model.variant.indices(model.encoder(t)).flatten().numpy()
    assert len(set(idx)) == 4
    # one code per blob
    assert all(len(set(idx[labels == b])) == 1 for b in range(4))
    err = ((model.eval().reconstruct(t) - t) ** 2).sum(1).mean().item()
    total = ((x - x.mean(0)) ** 2).sum(1).mean()
    assert err < 0.01 * total, (err, total)
    last = history[-1]
    assert last["dead_codes"] == 0 and last["codebook_perplexity"] == pytest.approx(4.0, rel=0.05)
    assert {"train_perplexity", "train_commitment", "restarted_codes"} <= set(last)


def _same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("arch, options", [("mlp", {"code_dim": 2}), ("conv", {"ema": False})])
def test_an_interrupted_run_resumes_bit_identical(tmp_path, digits01, arch, options):
    """Codes restart every few steps (random encoder outputs from torch's checkpointed generator); the
    codebook, its averages and the usage counters are buffers of the checkpoint."""
    x = torch.from_numpy(digits01)
    train, val = x[:640], x[640:800]
    opts = dict(codebook_size=64, dead_restart=2, **options)
    cfg = {"epochs": 3, "batch_size": 64, "checkpoint_every": 4}
    straight = _model(arch, **opts)
    hist_a = Trainer(straight, TrainConfig(**cfg), run_dir=tmp_path / "a").fit(train, val)
    assert sum(r["restarted_codes"] for r in hist_a) > 0
    first = _model(arch, **opts)
    with pytest.raises(Interrupted):
        Trainer(first, TrainConfig(**cfg), run_dir=tmp_path / "b", callbacks=[InterruptAt(13)]).fit(train, val)
    resumed = _model(arch, seed=123, **opts)
    hist_b = Trainer(resumed, TrainConfig(**cfg), run_dir=tmp_path / "b").fit(train, val, resume=True)
    assert _same_state(straight, resumed)
    drop = ("seconds", "samples_per_second")
    assert [{k: v for k, v in r.items() if k not in drop} for r in hist_a] == [
        {k: v for k, v in r.items() if k not in drop} for r in hist_b
    ]


def test_bad_shapes_and_options_are_refused():
    with pytest.raises(ConfigError, match="does not divide"):
        _model(code_dim=4)
    with pytest.raises(ConfigError, match="pass --latent 8"):
        _model("conv", code_dim=2)  # 2 channels x 4 positions: 8, not 12
    with pytest.raises(ConfigError, match="no dense layers"):
        Autoencoder(
            ModelConfig(
                variant="vq-vae",
                input_dim=64,
                image_shape=(1, 8, 8),
                architecture="conv",
                hidden=(4,),
                conv_dense=(16,),
                latent=16,
            )
        )
    for bad in ({"codebook_size": 0}, {"ema_decay": 1.0}, {"commitment": -1.0}, {"dead_restart": -1}):
        with pytest.raises(ConfigError, match="vq-vae option"):
            _model(**bad)
    flat_conv = _model("conv", spatial=False, code_dim=4)  # the dense conv code, in vectors of 4
    assert flat_conv.variant.groups == 3 and type(flat_conv.encoder).__name__ == "ConvEncoder"
    assert perplexity(torch.tensor([5, 5, 5, 5])).item() == pytest.approx(4.0)


def test_cli_train_then_compress_stores_the_indices(tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        run_cli(
            [
                "train",
                "vq-vae",
                "--data",
                "digits",
                "--epochs",
                "1",
                "--hidden",
                "32",
                "--latent",
                "8",
                "--code-dim",
                "2",
                "--codebook-size",
                "64",
                "--out",
                str(run),
            ]
        )
        == 0
    )
    history = json.loads((run / "history.json").read_text())
    assert {"train_perplexity", "val_perplexity", "codebook_perplexity", "dead_codes"} <= set(history[0])
    model = aekit.load(run)
    codes = tmp_path / "codes.npz"
    assert run_cli(["compress", str(run), "digits", "-o", str(codes)]) == 0
    assert "24 bits per input" in capsys.readouterr().out  # 4 vectors x log2(64) bits
    packed = C.load_codes(codes)
    assert isinstance(packed.quantizer, C.CodebookQuantizer)
    x = aekit.load_data("digits").x
    assert packed.symbols.dtype == np.uint8 and packed.symbols.shape == (len(x), 4)
    xm = torch.from_numpy(model.prepare(x))
    with torch.no_grad():
        np.testing.assert_array_equal(packed.symbols, model.variant.indices(model.encoder(xm)).numpy())
    codes_back = packed.quantizer.dequantize(packed.symbols).astype(np.float32)
    np.testing.assert_array_equal(codes_back, model.encode_array(x))  # the indices give the codes exactly
    assert run_cli(["decompress", str(run), str(codes), "-o", str(tmp_path / "r.npy")]) == 0
    rows = np.load(tmp_path / "r.npy").reshape(len(x), -1)
    np.testing.assert_allclose(rows, model.reconstruct_array(x), rtol=1e-5, atol=1e-5)
    scores = C.compression_scores(model, model.prepare(x[:200]), model.prepare(x[200:400]), 8, pca=False)
    assert scores["autoencoder"]["bits_per_input"] == 24 and scores["autoencoder"]["codebook_size"] == 64


def test_spatial_codes_round_trip_through_the_codebook_quantizer():
    model = _model("conv", codebook_size=300, code_dim=3).eval()  # 300 codes: uint16 symbols, 9 bits
    x = np.random.default_rng(0).random((5, 64)).astype(np.float32)
    q = C.code_quantizer(model)
    assert q is not None and q.layout == "channels" and q.bits == 9 and q.dtype == np.uint16
    codes = model.encode_array(x)
    symbols = q.quantize(codes)
    with torch.no_grad():
        np.testing.assert_array_equal(
            symbols, model.variant.indices(model.encoder(model._to_encoder(torch.from_numpy(x)))).numpy()
        )
    np.testing.assert_array_equal(q.dequantize(symbols).astype(np.float32), codes)
    assert C.code_quantizer(Autoencoder(ModelConfig(input_dim=64, hidden=(8,), latent=3))) is None


@pytest.mark.parametrize("ema", [True, False])
def test_a_training_step_without_restarts_traces_into_one_graph(ema):
    """The code counts have a fixed length (bincount's output shape depends on the data: a graph break
    under --compile); only the dead-code restart, whose rows depend on the counts, leaves the graph."""
    import torch._dynamo

    torch._dynamo.reset()
    torch.manual_seed(0)
    model = Autoencoder(ModelConfig(variant="vq-vae", input_dim=16, hidden=(8,), latent=6,
                                    options={"dead_restart": 0, "ema": ema}))
    model.train()

    def loss(x):
        return sum(model(x).losses.values())

    explained = torch._dynamo.explain(loss)(torch.rand(32, 16))
    assert explained.graph_break_count == 0, [str(b.reason)[:200] for b in explained.break_reasons]
