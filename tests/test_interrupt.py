"""The stop button in a real Jupyter kernel: training interrupted mid-way keeps the last finished epoch, saves no
checkpoint, and running the cell again finishes correctly."""
import os
import signal
import threading

import nbformat
from nbclient import NotebookClient

SETUP = """
import torch
from course_utils.checkpoints import checkpoint_dir, fit_or_load
from course_utils.models import VAE
from course_utils.setup import seed_everything
seed_everything(0)
x = torch.rand(20_000, 1, 28, 28)
data = (x, torch.zeros(len(x), dtype=torch.int64))
"""
TRAIN = """
model = VAE(latent_dim=4, hidden_dim=64)
history = fit_or_load("interrupt.pt", model, data, num_epochs=10_000, progress=False)
print("epochs kept:", len(history["epoch"]), "checkpoint saved:", (checkpoint_dir() / "interrupt.pt").exists())
"""


def test_interrupted_training_cell_then_rerun(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SETUP), nbformat.v4.new_code_cell(TRAIN)])
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    with client.setup_kernel():
        client.execute_cell(nb.cells[0], 0)
        interrupted = _interrupt_after(client, nb.cells[1], seconds=8)
        assert "Interrupted: the model and history are those of epoch" in interrupted
        epochs_kept = int(interrupted.split("epochs kept: ")[1].split()[0])
        assert epochs_kept < 10_000
        assert "checkpoint saved: False" in interrupted  # an unfinished run is never saved as if it were finished
        nb.cells[1].source = TRAIN.replace("num_epochs=10_000", "num_epochs=2")
        client.execute_cell(nb.cells[1], 1)  # the learner runs the cell again (shorter, to keep the test quick)
        again = "".join(o.get("text", "") for o in nb.cells[1].outputs)
        assert "epochs kept: 2 checkpoint saved: True" in again


def _interrupt_after(client, cell, seconds: float) -> str:
    """Run the cell, send SIGINT (what Jupyter's stop button sends) after some seconds; return the cell's text.

    The signal goes to the kernel's process alone: km.interrupt_kernel() signals its whole process group, which
    here includes pytest itself.
    """
    kernel_pid = client.km.provisioner.process.pid
    timer = threading.Timer(seconds, os.kill, args=(kernel_pid, signal.SIGINT))
    timer.start()
    try:
        client.execute_cell(cell, 1)
    finally:
        timer.cancel()
    return "".join(o.get("text", "") for o in cell.outputs)
