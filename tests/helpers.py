"""Helpers shared by the test modules (pytest puts this folder on sys.path)."""

from aekit.cli import main
from aekit.train import Callback


def run_cli(argv):
    """main() or argparse's SystemExit, as an exit status."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


class InterruptAt(Callback):
    """Interrupt training (checkpoint + Interrupted) after the given global step."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, trainer, step, losses):
        if step == self.step:
            trainer.interrupt()


def tiny_dsprites_run(out, monkeypatch):
    """A 1-epoch beta-VAE run on a 300-image dSprites builtin, whose evaluation scores MIG on 500
    combinations; returns the run directory ``out``."""
    import aekit
    from aekit import evaluation
    from aekit.data import builtin
    monkeypatch.setattr(builtin, "DSPRITES_BUILTIN_SIZE", 300)
    monkeypatch.setattr(evaluation, "DSPRITES_MIG_N", 500)
    aekit.fit("beta-vae", "dsprites", hidden=(32,), latent=4, epochs=1, out=out, progress=False, figures=False)
    return out
