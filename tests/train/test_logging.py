"""TrainProgress: the epoch in the bar's title, the latest losses and lr in its info field."""

from __future__ import annotations

from ractd.train.logging import TrainProgress, train_progress


class RecordingBar:
    def __init__(self) -> None:
        self.calls: list[dict] = []

    def update(self, **fields) -> None:
        self.calls.append(fields)


def test_the_bar_shows_the_epoch_and_the_latest_losses():
    bar = RecordingBar()
    progress = TrainProgress(bar, title="teacher")
    progress.update(7, 1, 3, {"loss": 0.123456, "mse": 2.0, "val_loss": 1.5, "lr": 1e-4})
    progress.update(8, 1, 3)
    assert bar.calls[0] == {"completed": 7, "description": "[bold]teacher epoch 2/3",
                            "info": "loss=0.1235  val_loss=1.5  lr=0.0001"}
    assert bar.calls[1] == {"completed": 8, "description": "[bold]teacher epoch 2/3", "info": None}


def test_a_disabled_bar_accepts_updates_silently(capsys):
    with train_progress(10, 2, enabled=False) as progress:
        progress.update(3, 0, 1, {"loss": 1.0})
    assert capsys.readouterr().out == ""
