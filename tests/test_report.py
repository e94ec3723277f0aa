"""aekit report: one self-contained HTML page per run, checked in a real headless browser."""

import base64
import io as bytes_io
import json
from html.parser import HTMLParser

import numpy as np
import pytest
from helpers import run_cli, tiny_dsprites_run

import aekit
from aekit import io
from aekit.report import codes_2d, first_layer_filters, report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: the sections every autoencoder report has
COMMON = {"configuration", "evaluation", "losses", "reconstructions", "codes", "activations", "filters"}


class Page(HTMLParser):
    """Tags, attributes and section ids of an HTML page."""

    def __init__(self, text):
        super().__init__()
        self.tags, self.attrs, self.sections = [], [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, k, v or "") for k, v in attrs]
        if tag == "section":
            self.sections.append(dict(attrs)["id"])

    @property
    def images(self):
        return [v for tag, k, v in self.attrs if tag == "img" and k == "src"]


def check_self_contained(text):
    """No external reference at all: every image a PNG data URI, no scripts, style sheets, fonts or
    frames from elsewhere, every link an in-page anchor."""
    page = Page(text)
    assert page.images, "the report has no figures"
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_MAGIC)
    for tag, key, value in page.attrs:
        if key in ("src", "href", "srcset", "action", "poster", "data"):
            assert not value.lower().lstrip().startswith(("http:", "https:", "//", "file:", "ftp:")), (tag, key, value)
            if key == "href":
                assert value.startswith("#"), (tag, value)
    assert not {"script", "link", "iframe", "object", "embed"} & set(page.tags)
    assert "@import" not in text and "url(" not in text
    return page


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """Tiny runs on digits: a plain autoencoder, a VAE, a sparse and a k-sparse one."""
    root = tmp_path_factory.mktemp("runs")
    common = dict(progress=False, figures=False, epochs=3, batch_size=256)
    aekit.fit("ae", "digits", out=root / "ae", hidden=(32,), latent=4, **common)
    aekit.fit("vae", "digits", out=root / "vae", hidden=(32,), latent=2, **common)
    aekit.fit("sparse", "digits", out=root / "sparse", hidden=(32,), latent=16, **common)
    aekit.fit("ksparse", "digits", out=root / "ksparse", hidden=(32,), latent=16, k=3, **common)
    return root


@pytest.fixture(scope="session")
def reports(runs):
    return {name: report(runs / name) for name in ("ae", "vae", "sparse", "ksparse")}


def test_ae_report_is_self_contained_with_its_sections(runs, reports):
    path = reports["ae"]
    assert path == runs / "ae" / "report.html"
    text = path.read_text(encoding="utf-8")
    page = check_self_contained(text)
    assert set(page.sections) == COMMON  # no samples (not generative), no pretraining record
    assert page.sections[0] == "configuration"
    # the configuration, the metrics computed by aekit.evaluate (no evaluation.json), labels in the code view
    assert "hidden" in text and "per_example_squared_error" in text and "ratio_to_pca" in text
    assert "coloured by label" in text and "4-D codes projected on their first two principal components" in text
    assert "first linear layer: 32 units of 64 inputs" in text
    assert not list((runs / "ae").glob(".report.html.*"))  # nothing half-written left behind


def test_vae_report_has_samples_interpolations_traversals(reports):
    text = reports["vae"].read_text()
    page = check_self_contained(text)
    assert set(page.sections) == COMMON | {"generative"}
    assert "64 samples from the prior" in text and "interpolations" in text and "latent traversals" in text
    assert "likelihood.nll_iw" in text  # the VAE's evaluation: -log p(x) estimate
    assert "posterior means" in text and "the 2-D codes" in text
    assert len(page.images) == 8  # losses, reconstructions, codes, 3 generative, activations, filters


@pytest.mark.parametrize("name, expected", [("sparse", "target mean activation rho"),
                                            ("ksparse", "units kept per row at encoding")])
def test_sparse_variants_get_activation_histograms(reports, name, expected):
    text = reports[name].read_text()
    page = check_self_contained(text)
    assert "activations" in page.sections
    assert "mean activation of each code unit" in text and expected in text


def test_ksparse_activation_table_counts_the_kept_units(reports):
    # k = 3 at encoding (alpha = 1): every row has at most 3 non-zero code units
    text = reports["ksparse"].read_text()
    row = text.split("non-zero units per row (mean)</td>")[1].split("</td>")[0]
    assert 0 < float(row.rsplit(">", 1)[1]) <= 3


def test_evaluation_json_is_shown_instead_of_recomputed(runs, tmp_path, monkeypatch):
    import aekit.evaluation
    out = tmp_path / "r.html"
    io.atomic_write_json(runs / "ae" / "evaluation.json", {"autoencoder": {"mse": 0.123456}, "marker": "from-file"})
    try:
        monkeypatch.setattr(aekit.evaluation, "evaluate", lambda *a, **k: pytest.fail("evaluate must not be called"))
        text = report(runs / "ae", out).read_text()
    finally:
        (runs / "ae" / "evaluation.json").unlink()
    assert "from-file" in text and "0.123456" in text and "From evaluation.json" in text
    text = report(runs / "ae", out, evaluate=False).read_text()
    assert "per_example_squared_error" not in text and "evaluation was turned off" in text


def test_text_is_escaped_and_non_image_data_plotted(tmp_path):
    # a data file whose name is HTML: it appears in the page, escaped
    x = np.random.default_rng(0).normal(size=(120, 6))
    csv = tmp_path / "x<img src=x onerror=alert(1)>&.csv"
    np.savetxt(csv, x, delimiter=",")
    aekit.fit("ae", str(csv), out=tmp_path / "run", hidden=(8,), latent=3, epochs=2, scale="standard",
              progress=False, figures=False)
    text = report(tmp_path / "run", evaluate=False).read_text()
    page = check_self_contained(text)
    assert "<img src=x" not in text and "&lt;img src=x onerror=alert(1)&gt;&amp;.csv" in text
    assert {"reconstructions", "codes"} <= set(page.sections)
    assert "features of the first rows" in text and "no labels in this data" in text
    assert "weights of each unit (row) on each input feature" in text


def test_in_memory_run_without_data_gets_a_reduced_report(tmp_path):
    x = np.random.default_rng(0).normal(size=(100, 5)).astype(np.float32)
    aekit.fit("ae", x, out=tmp_path / "run", hidden=(8,), latent=2, epochs=1, scale="standard", progress=False,
              figures=False)
    page = check_self_contained(report(tmp_path / "run").read_text())
    assert "codes" not in page.sections and {"data", "losses", "filters"} <= set(page.sections)
    page = check_self_contained(report(tmp_path / "run", data=x).read_text())  # the same data given back
    assert {"reconstructions", "codes", "evaluation"} <= set(page.sections)


def test_pretrained_and_classifier_runs(tmp_path):
    aekit.fit("deep", "digits", out=tmp_path / "deep", pretrain="rbm", hidden=(16,), latent=4, pretrain_epochs=1,
              epochs=1, progress=False, figures=False)
    text = report(tmp_path / "deep", evaluate=False).read_text()
    assert "pretraining" in check_self_contained(text).sections and "Greedy layer-wise pretraining by" in text
    aekit.finetune(tmp_path / "deep", epochs=1, out=tmp_path / "clf", progress=False)
    text = report(tmp_path / "clf").read_text()
    page = check_self_contained(text)
    assert page.sections == ["configuration", "evaluation", "losses", "filters"] and "test_accuracy" in text


def test_not_a_run_directory(tmp_path):
    with pytest.raises(aekit.AekitError, match="not an aekit run directory"):
        report(tmp_path)
    with pytest.raises(aekit.AekitError, match="no such run directory"):
        report(tmp_path / "missing")
    assert list(tmp_path.iterdir()) == []


def test_a_broken_run_leaves_no_report(runs, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "model.safetensors"):
        (run / name).write_bytes((runs / "ae" / name).read_bytes())
    (run / "history.json").write_text("{not json")
    with pytest.raises(aekit.RunError, match="history.json: not valid JSON"):
        report(run, evaluate=False)
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "history.json", "model.safetensors"]


def test_dsprites_run_gets_its_disentanglement(tmp_path, monkeypatch):
    tiny_dsprites_run(tmp_path / "run", monkeypatch)
    result = aekit.evaluate(tmp_path / "run", pca=False, iw_samples=2)
    text = report(tmp_path / "run").read_text()
    page = check_self_contained(text)
    assert "disentanglement" in page.sections
    section = text.split('<section id="disentanglement">')[1].split("</section>")[0]
    assert f"{result['mig']['mig']:.6g}" in section and section.count("<tr>") == 1 + 5  # header + a row a factor
    for name in ("shape", "scale", "orientation", "pos_x", "pos_y"):
        assert f"<td>{name}</td>" in section
    assert section.count("<img") == 1  # the heat map
    # the matrix is not repeated in the measures table
    assert "normalized_mutual_info" not in text.split('<section id="evaluation">')[1].split("</section>")[0]
    # other runs have no such section
    assert "disentanglement" not in Page(report(tmp_path / "run", evaluate=False, out=tmp_path / "r.html")
                                         .read_text()).sections


def test_codes_2d_is_the_principal_plane():
    from sklearn.decomposition import PCA
    z = np.random.default_rng(0).normal(size=(200, 5)) * [5, 3, 1, 0.5, 0.1]
    points, labels = codes_2d(z)
    ref = PCA(2).fit_transform(z)
    np.testing.assert_allclose(np.abs(points), np.abs(ref), atol=1e-8)
    assert labels[0].startswith("PC 1")
    two = z[:, :2]
    assert codes_2d(two)[0] is not None and np.array_equal(codes_2d(two)[0], two)


def test_first_layer_filters_are_the_encoder_weights(runs):
    model = aekit.load(runs / "ae")
    w, shape, _ = first_layer_filters(model.encoder, model.config.image_shape)
    assert shape == (1, 8, 8)
    np.testing.assert_array_equal(w, model.encoder[0].weight.detach().numpy())


# -- the page in a real browser (Debian's chromium) ---------------------------------------------
@pytest.mark.parametrize("name", ["ae", "vae", "sparse"])
def test_report_renders_in_headless_chromium(browser, reports, name, tmp_path):
    from PIL import Image
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(reports[name].resolve().as_uri(), wait_until="load")
    try:
        assert errors == []
        # nothing fetched but the page itself and its embedded data
        assert all(u == reports[name].resolve().as_uri() or u.startswith("data:") for u in requests), requests
        sizes = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
        assert len(sizes) == len(Page(reports[name].read_text()).images)
        assert all(done and w > 0 and h > 0 for done, w, h in sizes), sizes
        assert page.evaluate("document.querySelectorAll('section h2').length") >= len(COMMON)
        shot = page.screenshot(full_page=True)
    finally:
        page.close()
    img = np.asarray(Image.open(bytes_io.BytesIO(shot)).convert("L"), dtype=np.float64)
    assert img.shape[0] > 900 and img.shape[1] == 1280  # a long page, not a blank viewport
    assert img.std() > 20 and (img < 200).mean() > 0.02  # drawn, not blank or all white


def test_cli_report(runs, tmp_path, capsys):
    out = tmp_path / "out.html"
    assert run_cli(["report", str(runs / "ae"), "-o", str(out), "--no-evaluate"]) == 0
    assert out.exists() and str(out) in capsys.readouterr().out
    check_self_contained(out.read_text())
    assert run_cli(["report", str(tmp_path), "-o", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("aekit: error: ") and "not an aekit run directory" in err and "Traceback" not in err
    assert not (tmp_path / "x.html").exists()
    json.loads((runs / "ae" / "config.json").read_text())  # the run is untouched
