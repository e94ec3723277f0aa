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
