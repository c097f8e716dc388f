"""The plots show the data they are given: the plotted values are read back from the figure before it is
saved."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
from matplotlib.layout_engine import ConstrainedLayoutEngine  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from hzg.results import bands, plotting  # noqa: E402


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text)]


def test_no_plot_names_an_experiment(tmp_path, figures):
    """Not a collaboration result: every plot says 'Simulation' with the generator, never CMS or ATLAS."""
    tpr = np.linspace(0, 1, 11)
    plotting.roc_curves([("ETN", tpr**2, tpr, 0.756)], tmp_path / "roc", 138, 13, (120, 130))
    epoch = np.arange(1, 11)
    loss = np.linspace(0.7, 0.5, 10)
    plotting.training_curves(
        [("trial 0", epoch, loss, loss + 0.01, np.linspace(0.5, 1.0, 10), 5)], tmp_path / "tc", 138, 13, "ETN"
    )
    rng = np.random.default_rng(1)
    plotting.signal_vs_background(
        rng.normal(size=200),
        np.ones(200),
        rng.normal(size=300),
        np.ones(300),
        "x",
        tmp_path / "svb",
        138,
        13,
        np.linspace(-3, 3, 11),
    )
    plotting.roc_bands(
        [("ETN", bands.roc_band([(tpr**2, tpr), (tpr**3, tpr)]), [0.7, 0.8])],
        tmp_path / "rb",
        138,
        13,
        (120, 130),
        2,
    )
    plotting.training_bands(
        [("trial 0", epoch, loss, loss + 0.01, np.linspace(0.5, 1.0, 10), 5)] * 2,
        tmp_path / "tb",
        138,
        13,
        "ETN",
    )
    assert len(figures) == 5
    for fig in figures:
        text = " ".join(_texts(fig))
        assert plotting.SIMULATION_LABEL in text and "138" in text
        assert "CMS" not in text and "ATLAS" not in text


def _stairs(ax):
    return [p for p in ax.patches if hasattr(p, "get_data")]


def test_signal_vs_background_plots_the_normalised_weighted_histograms(tmp_path, figures):
    rng = np.random.default_rng(1)
    sig, bkg = rng.normal(125, 2, 500), rng.uniform(100, 180, 2000)
    sig_w, bkg_w = rng.uniform(0.5, 1.5, 500), rng.uniform(-0.2, 2.0, 2000)
    edges = np.linspace(100, 180, 21)
    paths = plotting.signal_vs_background(
        sig, sig_w, bkg, bkg_w, "m", tmp_path / "m", 138, 13, edges, unit="GeV"
    )
    ax = figures[0].axes[0]
    plotted = {p.get_label(): p.get_data() for p in _stairs(ax)}
    for label, values, w in ((r"$H\to Z\gamma$ signal", sig, sig_w), (r"$Z\gamma$ background", bkg, bkg_w)):
        h, _ = np.histogram(values, bins=edges, weights=w)
        data = plotted[label]
        np.testing.assert_allclose(data.values, h / h.sum())
        np.testing.assert_allclose(data.edges, edges)
    assert ax.get_ylabel() == "Fraction of events / 4 GeV"
    png = mpimg.imread(paths[1])
    assert png.ndim == 3 and png.shape[0] > 400 and png.shape[1] > 400 and png[..., :3].std() > 0.05
    assert paths[0].read_bytes().startswith(b"%PDF")


def test_values_outside_the_edges_go_to_the_first_and_last_bins(tmp_path, figures):
    edges = np.array([0.0, 1.0, 2.0])
    plotting.signal_vs_background(
        np.array([-5.0, 0.5, 9.0]), np.ones(3), np.array([1.5]), np.ones(1), "x", tmp_path / "x", 1, 13, edges
    )
    data = {p.get_label(): p.get_data() for p in _stairs(figures[0].axes[0])}
    np.testing.assert_allclose(data[r"$H\to Z\gamma$ signal"].values, [2 / 3, 1 / 3])
    np.testing.assert_allclose(data[r"$Z\gamma$ background"].values, [0.0, 1.0])


def test_roc_curves_plot_background_against_signal_efficiency_with_the_auc(tmp_path, figures):
    tpr = np.linspace(0, 1, 11)
    fpr = tpr**2
    plotting.roc_curves([("ETN", fpr, tpr, 0.756)], tmp_path / "roc", 138, 13, (120, 130))
    ax = figures[0].axes[0]
    line = next(ln for ln in ax.lines if ln.get_label().startswith("ETN"))
    np.testing.assert_allclose(line.get_xdata(), tpr)
    np.testing.assert_allclose(line.get_ydata(), fpr)
    assert line.get_label() == "ETN (AUC = 75.6 %)"
    assert ax.get_xlabel() == "Signal efficiency" and ax.get_ylabel() == "Background efficiency"


def test_background_mass_shapes_plot_each_score_bin_and_mark_empty_ones(tmp_path, figures):
    edges = np.linspace(100, 180, 5)
    shapes = np.array([[0.1, 0.2, 0.3, 0.4], [np.nan] * 4, [0.25] * 4])
    plotting.background_mass_shapes(edges, shapes, 1.2, tmp_path / "s", 138, 13, "ETN", counts=[10, 0, 30])
    ax = figures[0].axes[0]
    plotted = {p.get_label(): p.get_data().values for p in _stairs(ax)}
    np.testing.assert_allclose(plotted["sig. p 66.7-100 % (10 MC ev.)"], shapes[0])
    np.testing.assert_allclose(plotted["sig. p 0-33.3 % (30 MC ev.)"], shapes[2])
    assert any(ln.get_label() == "sig. p 33.3-66.7 % (0 MC ev.), no background" for ln in ax.lines)


def test_training_curves_plot_the_history_and_star_the_selected_epoch(tmp_path, figures):
    epoch = np.arange(1, 11)
    train = np.linspace(1, 0.5, 10)
    val = np.where(epoch % 5 == 0, train + 0.1, np.nan)
    z = np.where(epoch % 5 == 0, [0, 0, 0, 0, 1.2, 0, 0, 0, 0, 1.0], np.nan)
    plotting.training_curves([("trial 0", epoch, train, val, z, 5)], tmp_path / "t", 138, 13, "ETN")
    ax, sax = figures[0].axes[:2]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), train)
    np.testing.assert_allclose(ax.lines[1].get_xdata(), [5, 10])
    np.testing.assert_allclose(sax.lines[0].get_ydata(), [1.2, 1.0])
    star = [ln for ln in sax.lines if ln.get_marker() == "*"]
    assert len(star) == 1 and list(star[0].get_xdata()) == [5] and list(star[0].get_ydata()) == [1.2]


def _fill_points(collection) -> set[tuple[float, float]]:
    """The (x, y) corners of a fill_between polygon."""
    return {(round(float(x), 9), round(float(y), 9)) for x, y in collection.get_paths()[0].vertices}


def _points(x, *ys) -> set[tuple[float, float]]:
    return {(round(float(a), 9), round(float(b), 9)) for y in ys for a, b in zip(x, y)}


def test_roc_bands_fill_between_the_lowest_and_highest_trial_around_the_mean(tmp_path, figures):
    tpr = np.linspace(0, 1, 11)
    grid = np.linspace(0, 1, 5)
    etn = bands.roc_band([(tpr**2, tpr), (tpr**3, tpr), (tpr**4, tpr)], grid)
    bdt = bands.roc_band([(tpr, tpr)], grid)
    paths = plotting.roc_bands(
        [("ETN", etn, [0.75, 0.77, 0.76]), ("BDT", bdt, [0.5])], tmp_path / "rb", 138, 13, (120, 130), 3
    )
    ax = figures[0].axes[0]
    lines = {ln.get_label(): ln for ln in ax.lines}
    mean = lines["ETN (AUC = 76.0 ± 1.0 %)"]
    np.testing.assert_allclose(mean.get_xdata(), grid)
    np.testing.assert_allclose(mean.get_ydata(), np.interp(grid, tpr, (tpr**2 + tpr**3 + tpr**4) / 3))
    np.testing.assert_allclose(lines["BDT (AUC = 50.0 %)"].get_ydata(), grid)
    etn_fill, bdt_fill = ax.collections[:2]
    assert _fill_points(etn_fill) == _points(grid, np.interp(grid, tpr, tpr**4), np.interp(grid, tpr, tpr**2))
    assert _fill_points(bdt_fill) == _points(grid, grid)
    assert etn_fill.get_facecolor()[0][:3] == pytest.approx(mean.get_color()[:3])
    assert "3 trials" in ax.get_legend().get_title().get_text()
    assert ax.get_xlabel() == "Signal efficiency" and ax.get_ylabel() == "Background efficiency"
    assert paths[0].read_bytes().startswith(b"%PDF") and paths[1].suffix == ".png"


def test_auc_text_is_mean_and_sample_std_in_percent():
    assert plotting.auc_text([0.75, 0.77]) == "76.0 ± 1.4 %"
    assert plotting.auc_text([0.756]) == "75.6 %"
    assert plotting.auc_text([float("nan")]) == "n/a"


def test_training_bands_plot_the_mean_and_min_max_per_epoch(tmp_path, figures):
    epoch = np.arange(1, 11)
    evaluated = epoch % 5 == 0
    train = [np.linspace(1, 0.5, 10), np.linspace(1.2, 0.4, 10)]
    val = [np.where(evaluated, t + 0.1, np.nan) for t in train]
    z = [np.where(evaluated, [0, 0, 0, 0, 1.2, 0, 0, 0, 0, 1.0], np.nan), np.full(10, np.nan)]
    z[1][4] = 0.8  # trial 1: a significance at epoch 5 only
    histories = [(f"trial {t}", epoch, train[t], val[t], z[t], 5) for t in (0, 1)]
    plotting.training_bands(histories, tmp_path / "tb", 138, 13, "ETN", xlabel="Epoch")
    ax, sax = figures[0].axes[:2]
    lines = {ln.get_label(): ln for ln in ax.lines + sax.lines}
    np.testing.assert_allclose(lines["training loss"].get_xdata(), epoch)
    np.testing.assert_allclose(lines["training loss"].get_ydata(), (train[0] + train[1]) / 2)
    np.testing.assert_allclose(lines["validation loss"].get_xdata(), [5, 10])
    np.testing.assert_allclose(lines["validation loss"].get_ydata(), (val[0] + val[1])[evaluated] / 2)
    np.testing.assert_allclose(lines["validation significance"].get_xdata(), [5, 10])
    np.testing.assert_allclose(lines["validation significance"].get_ydata(), [1.0, 1.0])  # 10: trial 0 only
    train_fill, val_fill = ax.collections[:2]
    assert _fill_points(train_fill) == _points(epoch, np.minimum(*train), np.maximum(*train))
    assert _fill_points(val_fill) == _points([5, 10], val[1][evaluated], val[0][evaluated])
    assert _fill_points(sax.collections[0]) == _points([5, 10], [0.8, 1.0], [1.2, 1.0])
    assert "2 trials" in ax.get_legend().get_title().get_text()
    assert sax.get_xlabel() == "Epoch"


def test_roc_of_test_split_uses_the_test_events_in_the_window_only():
    import pandas as pd

    from hzg import registry

    # test split in the window: signal scores 0.9, 0.6; background 0.7, 0.2 (weights 1)
    frame = pd.DataFrame(
        {
            "score": [0.9, 0.6, 0.7, 0.2, 0.1, 0.95, 0.99],
            "mllg": [125, 125, 125, 125, 125, 125, 150],
            "weight": [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
            "is_signal": [1, 1, 0, 0, 1, 0, 0],
            "split": [registry.TEST] * 4 + [registry.TRAIN, registry.VALIDATION, registry.TEST],
        }
    )
    fpr, tpr, auc = plotting.roc_of_test_split(frame, (120, 130))
    # thresholds 0.9 (1 sig, 0 bkg), 0.7 (1, 1), 0.6 (2, 1), 0.2 (2, 2): 3 of the 4 pairs ordered right
    np.testing.assert_allclose(fpr, [0.0, 0.0, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(tpr, [0.0, 0.5, 0.5, 1.0, 1.0])
    assert auc == pytest.approx(0.75)


def test_save_draws_a_constrained_layout_once_and_both_files_keep_it(tmp_path, figures):
    """`save` places a constrained layout with its one draw and freezes it: the axes stay where that layout
    put them (not where the figure was created), and the PDF and PNG are written from those positions."""
    fig, axes = plotting.plt.subplots(2, 2, figsize=(10, 8), layout="constrained")
    for ax in axes.flat:
        ax.imshow(np.arange(12.0).reshape(3, 4))
        ax.set_ylabel("a long label that moves the layout")
    before = [ax.get_position().bounds for ax in axes.flat]
    paths = plotting.save(fig, tmp_path / "maps")
    assert [p.suffix for p in paths] == [".pdf", ".png"] and all(p.stat().st_size > 0 for p in paths)
    assert not isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine)
    placed = [ax.get_position().bounds for ax in fig.axes]  # `figures` keeps fig open after save
    assert placed != before  # the constrained layout moved the axes ...
    fig.canvas.draw()
    assert [ax.get_position().bounds for ax in fig.axes] == placed  # ... once: a later draw leaves them
    assert mpimg.imread(paths[1]).shape[2] in (3, 4)


def _reference_png(make, path):
    """What savefig draws for the figure of `make` at the box `save` uses: the same single draw at the PNG's
    resolution, its tight box padded and grown to whole pixels, a constrained layout placed and frozen."""
    fig = make()
    fig.set_dpi(plotting.SAVE_DPI)
    fig.canvas.draw()
    tight = fig.get_tightbbox(fig.canvas.get_renderer())
    if fig.get_layout_engine() is not None:
        fig.set_layout_engine("none")
    box = plotting.pixel_bbox(tight.padded(plotting.SAVE_PAD_INCHES), plotting.SAVE_DPI)
    fig.savefig(path, dpi=plotting.SAVE_DPI, bbox_inches=box)
    plotting.plt.close(fig)
    return path.read_bytes()


def _labelled_two_panels():
    plotting.hep.style.use("CMS")
    fig, ax = _two_panels(1e4)
    plotting.label_simulation(ax, 138.0, 13.0)
    return fig


def _constrained_maps():
    fig, axes = plotting.plt.subplots(2, 3, figsize=(14, 8), layout="constrained")
    for i, ax in enumerate(axes.flat):
        ax.imshow(np.random.default_rng(i).random((4, 5)))
        ax.set_title(f"head {i}")
    return fig


@pytest.mark.parametrize("make", [_labelled_two_panels, _constrained_maps])
def test_save_writes_the_png_from_its_one_draw_byte_for_byte_as_savefig(tmp_path, make, monkeypatch):
    """The PNG is the crop of `save`'s one draw: the same bytes as savefig's own draw of that box, and savefig
    is called for the PDF only."""
    reference = _reference_png(make, tmp_path / "reference.png")
    formats = []
    real_savefig = plotting.plt.Figure.savefig

    def savefig(self, fname, **kwargs):
        formats.append(kwargs.get("format"))
        return real_savefig(self, fname, **kwargs)

    monkeypatch.setattr(plotting.plt.Figure, "savefig", savefig)
    paths = plotting.save(make(), tmp_path / "saved")
    assert formats == ["pdf"]
    assert paths[1].read_bytes() == reference


def test_save_draws_the_png_again_when_an_artist_reaches_past_the_figure(tmp_path, figures):
    """Text beyond the figure's edge was clipped by the draw: savefig draws the PNG, and it holds the text."""
    fig, ax = _simple(1.0)
    ax.text(1.0, 1.3, "a note beyond the top edge", transform=ax.transAxes, fontsize=30)
    fig.canvas.draw()
    tight = fig.get_tightbbox(fig.canvas.get_renderer())
    assert tight.y1 > fig.get_size_inches()[1]
    assert plotting.drawn_png(fig, plotting.pixel_bbox(tight, fig.dpi), tight) is None
    paths = plotting.save(fig, tmp_path / "beyond")
    rows = mpimg.imread(paths[1]).shape[0]
    assert rows > fig.get_size_inches()[1] * plotting.SAVE_DPI  # taller than the figure: the note is in it


def test_pixel_bbox_grows_outwards_to_whole_pixels():
    from matplotlib.transforms import Bbox

    box = plotting.pixel_bbox(Bbox.from_extents(0.104, -0.05, 3.3, 2.0), 100)
    assert box.extents == pytest.approx([0.10, -0.05, 3.30, 2.00])
    box = plotting.pixel_bbox(Bbox.from_extents(0.1049, 0.0151, 3.3001, 1.999), 100)
    assert box.extents == pytest.approx([0.10, 0.01, 3.31, 2.00])


def _simple(top, layout=None):
    fig, ax = plotting.plt.subplots(figsize=(8, 6), layout=layout)
    ax.plot([0.0, 1.0], [0.0, top])
    return fig, ax


def _two_panels(top, layout=None):
    """Like a fit plot: stacked histograms, error bars and a legend over a ratio panel."""
    fig, (ax, low) = plotting.plt.subplots(
        2, 1, figsize=(10, 10), sharex=True, gridspec_kw={"height_ratios": [3, 1]}, layout=layout
    )
    edges = np.linspace(100.0, 180.0, 41)
    plotting.hep.histplot(
        [np.full(40, top), np.full(40, top / 10)],
        edges,
        stack=True,
        histtype="fill",
        ax=ax,
        label=["background", "signal"],
    )
    ax.errorbar(0.5 * (edges[1:] + edges[:-1]), np.full(40, top), yerr=top / 10, fmt="o", label="data")
    ax.legend(loc="upper right", title="category 0")
    low.plot(edges, np.zeros_like(edges))
    low.set_ylabel("Data - Bkg.")
    return fig, ax


@pytest.mark.parametrize("layout", [None, "constrained"])
@pytest.mark.parametrize("build", [_simple, _two_panels])
@pytest.mark.parametrize("top", [130.0, 3.0e7, 1.0e-5])
def test_simulation_label_sits_where_mplhep_puts_it_without_its_draws(top, build, layout):
    """`label_simulation` spares mplhep its figure draws where they move nothing: every text of the label
    lands where mplhep's own draws put it, with and without an offset text ("1e7", "1e-5") on the y axis, in
    a plain and a fit-plot-like figure; a constrained layout keeps mplhep's draws."""
    placed = {}
    for mine in (True, False):
        fig, ax = build(top, layout)
        if mine:
            assert plotting.shows_offset_text(ax) == (top != 130.0)
            plotting.label_simulation(ax, 138.0, 13.0)
            assert "draw" not in vars(fig.canvas)  # the canvas draws again
        else:
            plotting.hep.label.exp_label(ax=ax, **plotting.simulation_label_args(138.0, 13.0))
        fig.canvas.draw()
        placed[mine] = [(t.get_text(), t.get_position()) for t in ax.texts]
        plotting.plt.close(fig)
    assert placed[True] == placed[False] and len(placed[True]) >= 2
