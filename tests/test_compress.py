"""Compression with codes (aekit.compress): the quantizer's error bound, the bits bookkeeping,
the entropy rate, the PCA baseline, the .npz format (no pickle) and the CLI."""

import json

import numpy as np
import pytest
from helpers import run_cli

import aekit
from aekit import compress as C
from aekit.errors import ConfigError, DataError
from aekit.metrics import pca_reconstruction_errors


@pytest.fixture(scope="session")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("compress") / "run"
    aekit.fit("ae", "digits", hidden=(32,), latent=6, epochs=20, lr=3e-3, out=out, progress=False, figures=False)
    return out


@pytest.fixture(scope="session")
def model(run):
    return aekit.load(run)


@pytest.fixture(scope="session")
def digits_x():
    return aekit.load_data("digits").x


@pytest.mark.parametrize("bits", [1, 3, 8, 12])
def test_quantization_error_is_at_most_half_a_step_inside_the_range(bits):
    rng = np.random.default_rng(bits)
    codes = rng.normal(size=(500, 4)) * [1.0, 10.0, 0.01, 3.0] + [0.0, -5.0, 2.0, 100.0]
    q = C.Quantizer.fit(codes, bits)
    np.testing.assert_array_equal(q.low, codes.min(0))
    np.testing.assert_array_equal(q.high, codes.max(0))
    np.testing.assert_allclose(q.step, (codes.max(0) - codes.min(0)) / 2 ** bits)
    err = np.abs(codes - q.dequantize(q.quantize(codes)))
    assert (err <= q.step / 2 * (1 + 1e-9)).all()
    assert (err.max(0) > q.step / 4).all()                   # the bound is nearly reached: not loose
    # outside the range values go to the end cells: dequantized values stay inside [low, high]
    outside = q.dequantize(q.quantize(np.vstack([codes.min(0) - 50, codes.max(0) + 50])))
    assert (outside >= q.low - 1e-4).all() and (outside <= q.high + 1e-4).all()
    assert q.clipped_fraction(codes) == 0.0


def test_uniform_data_uses_every_cell_equally():
    z = (np.arange(4096) + 0.5)[:, None] / 4096            # uniform on [0, 1]
    q = C.Quantizer(4, np.zeros(1), np.ones(1))
    counts = np.bincount(q.quantize(z)[:, 0], minlength=16)
    assert (counts == 256).all()
    assert C.entropy_bits(q.quantize(z)) == pytest.approx(4.0)   # uniform symbols: the full 4 bits


def test_bits_bookkeeping_and_symbol_dtypes():
    codes = np.random.default_rng(0).normal(size=(200, 5))
    for bits, dtype in ((1, np.uint8), (8, np.uint8), (9, np.uint16), (16, np.uint16)):
        q = C.Quantizer.fit(codes, bits)
        s = q.quantize(codes)
        assert s.dtype == dtype and s.shape == (200, 5) and int(s.max()) <= 2 ** bits - 1 and q.levels == 2 ** bits
        assert C.CompressedCodes(s, q).bits_per_input == 5 * bits
    identity = (lambda x: x), (lambda z: z)
    rd = C.rate_distortion(*identity, codes, codes, 3)
    assert rd["code_size"] == 5 and rd["bits_per_input"] == 15
    for bad in (0, 17, 2.5, True):
        with pytest.raises(ConfigError, match="bits must be an integer from 1 to 16"):
            C.Quantizer.fit(codes, bad)
    with pytest.raises(ConfigError, match="unknown ranges"):
        C.Quantizer.fit(codes, 8, "median")


def test_entropy_is_exact_on_known_symbols_and_at_most_the_fixed_bits():
    s = np.array([[0, 7], [1, 7], [2, 7], [3, 7]], np.uint8)  # column 0: 4 equiprobable values, column 1: constant
    assert C.entropy_bits(s) == pytest.approx(2.0)
    assert C.entropy_bits(np.array([[0], [0], [0], [1]], np.uint8)) == pytest.approx(
        -(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25)))
    codes = np.random.default_rng(1).standard_t(3, size=(300, 6))
    for bits in (1, 2, 4, 8, 12):
        rd = C.rate_distortion(lambda x: x, lambda z: z, codes, codes, bits)
        assert 0 < rd["entropy_bits_per_input"] <= rd["bits_per_input"] + 1e-9


def test_quantile_ranges_clip_outliers():
    codes = np.concatenate([np.random.default_rng(2).normal(size=(999, 2)), [[1e3, -1e3]]])
    q_mm, q_q = C.Quantizer.fit(codes, 6), C.Quantizer.fit(codes, 6, "quantile", 0.01)
    assert (q_q.step < q_mm.step / 50).all()                 # the outlier no longer sets the step
    assert 0 < q_q.clipped_fraction(codes) <= 0.021
    bulk = codes[:999]
    assert np.abs(bulk - q_q.dequantize(q_q.quantize(bulk))).mean() < np.abs(bulk - q_mm.dequantize(
        q_mm.quantize(bulk))).mean()


def test_constant_dimension_is_reproduced_exactly():
    codes = np.column_stack([np.full(10, 3.25), np.linspace(0, 1, 10)])
    q = C.Quantizer.fit(codes, 2)
    np.testing.assert_array_equal(q.dequantize(q.quantize(codes))[:, 0], 3.25)


def test_16_bits_reconstruct_nearly_exactly(model, digits_x):
    X = model.prepare(digits_x)
    rd = C.rate_distortion(*C.model_coder(model), X, X, 16)
    assert rd["bits_per_input"] == 6 * 16
    assert rd["per_example_squared_error"] == pytest.approx(rd["unquantized"]["per_example_squared_error"], rel=1e-4)
    encode, decode = C.model_coder(model)
    codes = encode(X)
    q = C.Quantizer.fit(codes, 16)
    np.testing.assert_allclose(decode(q.dequantize(q.quantize(codes))), decode(codes), atol=1e-4)
    coarse = C.rate_distortion(*C.model_coder(model), X, X, 1)
    assert coarse["per_example_squared_error"] > rd["per_example_squared_error"] * 1.2
    assert coarse["psnr"] < rd["psnr"]


def test_pca_baseline_matches_unquantized_pca_and_degrades_with_fewer_bits(model, digits_x):
    X = model.prepare(digits_x)
    train, test = X[:1200], X[1200:]
    fine = C.compression_scores(model, test, train, 16)
    want = pca_reconstruction_errors(train, test, 6)
    assert fine["pca"]["code_size"] == 6
    assert fine["pca"]["bits_per_input"] == 96 == fine["autoencoder"]["bits_per_input"]
    assert fine["pca"]["per_example_squared_error"] == pytest.approx(want["per_example_squared_error"], rel=1e-3)
    assert fine["pca"]["unquantized"]["per_example_squared_error"] == pytest.approx(
        want["per_example_squared_error"], rel=1e-5)
    assert fine["data_range"] == 1.0 and fine["fit_rows"] == 1200 and fine["features"] == 64
    errors = [C.compression_scores(model, test, train, b)["pca"]["per_example_squared_error"] for b in (1, 3, 6)]
    assert errors[0] > errors[1] > errors[2] > want["per_example_squared_error"]
    assert "pca" not in C.compression_scores(model, test, train, 8, pca=False)


def test_evaluate_adds_compression_fields(run, capsys):
    result = aekit.evaluate(run, bits=8, iw_samples=0)
    comp = result["compression"]
    assert comp["bits"] == 8 and comp["autoencoder"]["bits_per_input"] == 48
    assert comp["autoencoder"]["entropy_bits_per_input"] <= 48 and "pca" in comp
    assert comp["fit_rows"] == aekit.load(run).run_config["splits"]["train"]      # ranges from the training split
    assert "compression" not in aekit.evaluate(run, iw_samples=0)
    capsys.readouterr()
    assert run_cli(["evaluate", str(run), "--bits", "4", "--no-pca"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["compression"]["autoencoder"]["bits_per_input"] == 24 and "pca" not in out["compression"]
    assert run_cli(["evaluate", str(run), "--bits", "0"]) == 2
    assert "bits must be an integer from 1 to 16" in capsys.readouterr().err
    assert run_cli(["evaluate", str(run), "--ranges", "quantile"]) == 2
    assert "--ranges: used only with --bits" in capsys.readouterr().err
    robust = aekit.evaluate(run, bits=6, ranges="quantile", pca=False, iw_samples=0)["compression"]
    assert robust["ranges"] == "quantile" and robust["quantile"] == C.DEFAULT_QUANTILE and "pca" not in robust


def test_cli_compress_decompress_round_trip(run, model, digits_x, tmp_path, capsys):
    codes = tmp_path / "codes.npz"
    assert run_cli(["compress", str(run), "digits", "--bits", "8", "-o", str(codes)]) == 0
    out = capsys.readouterr().out
    assert "48 bits per input" in out and "PSNR" in out
    packed = C.load_codes(codes)
    assert packed.symbols.dtype == np.uint8 and packed.symbols.shape == (len(digits_x), 6)
    train = aekit.data.training_rows(model.run_config)
    q = C.Quantizer.fit(model.encode_array(train), 8)
    np.testing.assert_array_equal(packed.symbols, C.compress(model, digits_x, q).symbols)
    np.testing.assert_array_equal(packed.quantizer.low, q.low)
    assert packed.meta["source"] == "digits" and packed.meta["image_shape"] == (1, 8, 8)
    with np.load(codes, allow_pickle=False) as f:                    # plain arrays only
        assert all(f[k].dtype != object for k in f.files)
    assert run_cli(["decompress", str(run), str(codes), "-o", str(tmp_path / "r.npy")]) == 0
    rows = np.load(tmp_path / "r.npy", allow_pickle=False).reshape(len(digits_x), -1)
    np.testing.assert_allclose(rows, C.decompress(model, packed), rtol=1e-6, atol=1e-6)
    # 8 bits: close to the unquantized reconstruction, in the data's units (0..16)
    assert np.abs(rows - model.reconstruct_array(digits_x)).mean() < 0.05 * 16
    assert run_cli(["decompress", str(run), str(codes), "-o", str(tmp_path / "r.png")]) == 0
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    assert run_cli(["compress", str(run), "digits", "--bits", "12", "--ranges", "quantile", "-o",
                    str(tmp_path / "c12.npz")]) == 0
    assert C.load_codes(tmp_path / "c12.npz").symbols.dtype == np.uint16


def test_pickled_or_foreign_npz_is_refused_and_nothing_is_written(run, tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    np.savez(bad, format=np.array("aekit-codes"), format_version=np.array(1), bits=np.array(8),
             low=np.zeros(6), high=np.ones(6), symbols=np.array([{"x": 1}], dtype=object))
    with pytest.raises(DataError, match="pickled"):
        C.load_codes(bad)
    capsys.readouterr()
    assert run_cli(["decompress", str(run), str(bad), "-o", str(tmp_path / "r.npy")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("aekit: error: ") and "pickled (object) arrays" in err
    np.savez(tmp_path / "plain.npz", x=np.zeros(3))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    for path, message in ((tmp_path / "plain.npz", "not aekit compressed codes"),
                          (tmp_path / "junk.npz", "not a readable .npz"), (tmp_path / "none.npz", "no such file")):
        assert run_cli(["decompress", str(run), str(path), "-o", str(tmp_path / "r.npy")]) == 2
        assert message in capsys.readouterr().err
    for argv, message in ((["compress", str(run), "digits", "--bits", "17", "-o", str(tmp_path / "c.npz")],
                           "bits must be an integer"),
                          (["compress", str(run), "digits", "-o", str(tmp_path / "c.npy")], "written as .npz")):
        assert run_cli(argv) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "r.npy").exists() and not (tmp_path / "c.npz").exists()


def test_decompress_with_another_run_is_refused(run, tmp_path, capsys):
    codes = tmp_path / "codes.npz"
    assert run_cli(["compress", str(run), "digits", "--bits", "4", "-o", str(codes)]) == 0
    other = tmp_path / "other"
    aekit.fit("ae", "digits", hidden=(8,), latent=3, epochs=1, out=other, progress=False, figures=False)
    capsys.readouterr()
    assert run_cli(["decompress", str(other), str(codes), "-o", str(tmp_path / "r.npy")]) == 2
    assert "other weights" in capsys.readouterr().err
    packed = C.load_codes(codes)
    with pytest.raises(DataError, match="code size is 3"):
        C.decompress(aekit.load(other), packed)


def test_entropy_coded_stream_decodes_to_the_symbols_even_unseen_ones():
    rng = np.random.default_rng(0)
    levels = 16
    train = np.clip(np.round(rng.normal(8, 1.5, size=(2000, 5))), 0, levels - 1).astype(np.uint8)
    train[:, 4] = 3  # a constant dimension in training
    em = C.EntropyModel.fit(train, levels)
    test = rng.integers(0, levels, size=(300, 5)).astype(np.uint8)  # includes symbols unseen in training
    assert (em.counts[np.arange(5), test] == 0).any()
    words = em.encode(test)
    np.testing.assert_array_equal(em.decode(words, len(test)), test)
    # the coder is within a few words of the model's ideal code length, and far below raw 4 bits on
    # codes that follow the training distribution
    like = np.clip(np.round(rng.normal(8, 1.5, size=(300, 5))), 0, levels - 1).astype(np.uint8)
    like[:, 4] = 3
    w = em.encode(like)
    assert 32 * len(w) <= em.bits(like) + 64
    assert 32 * len(w) < 0.75 * like.size * 4
    np.testing.assert_array_equal(em.decode(w, len(like)), like)
    assert em.decode(em.encode(like[:0]), 0).shape == (0, 5)
    assert (em.bytes_per_row(like[:3]) % 4 == 0).all()
    with pytest.raises(DataError):
        em.encode(np.full((1, 5), levels, np.int64))
    with pytest.raises(DataError):
        em.encode(np.zeros((1, 4), np.uint8))


def test_compress_range_codes_the_symbols_and_the_file_decodes_to_exactly_them(run, model, digits_x, tmp_path,
                                                                                capsys):
    coded, raw = tmp_path / "coded.npz", tmp_path / "raw.npz"
    assert run_cli(["compress", str(run), "digits", "--bits", "8", "-o", str(coded)]) == 0
    out = capsys.readouterr().out
    assert "range-coded" in out and "bytes per input in the stream" in out
    assert run_cli(["compress", str(run), "digits", "--bits", "8", "--no-entropy", "-o", str(raw)]) == 0
    assert "stored raw" in capsys.readouterr().out
    with np.load(coded, allow_pickle=False) as f:
        assert "symbols" not in f.files and f["stream"].dtype == np.uint32 and int(f["format_version"]) == 2
        counts, stream = f["entropy_counts"], f["stream"]
    with np.load(raw, allow_pickle=False) as f:
        assert "stream" not in f.files
    a, b = C.load_codes(coded), C.load_codes(raw)
    np.testing.assert_array_equal(a.symbols, b.symbols)            # the same symbols, losslessly coded
    assert a.symbols.dtype == b.symbols.dtype == np.uint8 and b.entropy is None
    # the entropy model is the count of the quantized codes of the run's training split
    train = aekit.data.training_rows(model.run_config)
    q = C.Quantizer.fit(model.encode_array(train), 8)
    np.testing.assert_array_equal(counts, C.EntropyModel.fit(q.quantize(model.encode_array(train)), 256).counts)
    # the stream is within a few words of the ideal code length under that model, below the raw 8 bits
    assert 32 * len(stream) <= a.entropy.bits(a.symbols) + 64
    assert 4 * len(stream) < a.symbols.size
    np.testing.assert_allclose(C.decompress(model, a), C.decompress(model, b), rtol=0, atol=0)


def test_version_1_files_still_load_and_a_stream_that_does_not_fit_its_model_is_refused(tmp_path):
    q = C.Quantizer(4, np.zeros(3), np.ones(3))
    symbols = np.array([[0, 5, 15], [3, 3, 3]], np.uint8)
    v1 = tmp_path / "v1.npz"
    np.savez(v1, format=np.array("aekit-codes"), format_version=np.array(1), symbols=symbols, bits=np.array(4),
             low=q.low, high=q.high)
    np.testing.assert_array_equal(C.load_codes(v1).symbols, symbols)
    em = C.EntropyModel.fit(symbols, 16)
    path = C.save_codes(tmp_path / "v2.npz", C.CompressedCodes(symbols, q, {}, em))
    np.testing.assert_array_equal(C.load_codes(path).symbols, symbols)
    with np.load(path, allow_pickle=False) as f:
        arrays = dict(f)
    for change, message in (({"entropy_counts": np.ones((3, 8), np.uint32)}, "does not match"),
                            ({"rows": np.array(-1)}, "rows must be >= 0"),
                            ({"stream": arrays["stream"].astype(np.int64)}, "uint32")):
        np.savez(tmp_path / "bad.npz", **{**arrays, **change})
        with pytest.raises(DataError, match=message):
            C.load_codes(tmp_path / "bad.npz")
    with pytest.raises(ConfigError, match="entropy model codes"):
        C.save_codes(tmp_path / "x.npz", C.CompressedCodes(symbols, q, {}, C.EntropyModel.fit(symbols[:, :2], 16)))
