"""The one logging seam of the agents: namespaced scalars to stdout, CSV, JSON lines, TensorBoard.

Keys follow Stable-Baselines3's names (``rollout/ep_rew_mean``, ``train/loss``, ``time/fps``,
``eval/accuracy`` ...). Values are recorded with :meth:`Logger.record` and written together by
:meth:`Logger.dump`, at most once per ``throttle_seconds``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import numbers
import sys
import time
from pathlib import Path
from typing import TextIO

from lm_envs.cache import atomic_write_text

OUTPUTS = ("stdout", "csv", "json", "tensorboard")
FILE_OUTPUTS = ("csv", "json", "tensorboard")
CSV_FILE = "progress.csv"
JSON_FILE = "progress.jsonl"
TENSORBOARD_FOLDER = "tensorboard"


class Logger:
    """Collect scalar values and write them to the chosen outputs.

    Files (created on the first write): ``folder/progress.csv`` (one row per dump, a ``step``
    column first), ``folder/progress.jsonl`` (one JSON object per dump) and TensorBoard event
    files under ``folder/tensorboard``. CSV and JSON lines are appended and flushed at each
    dump. A key that first appears after rows were written makes the CSV file be rewritten
    once with the wider header (atomically), so every row keeps its columns.

    Args:
        outputs: any of ``"stdout"``, ``"csv"``, ``"json"``, ``"tensorboard"``.
        folder: where file outputs write; required when one is requested.
        throttle_seconds: :meth:`dump` writes at most once per this many seconds unless
            ``force=True``; values recorded in between are kept (latest value per key).
        stream: text stream of the stdout output (``sys.stdout`` at write time when None).
    """

    def __init__(
        self,
        outputs: tuple[str, ...] | list[str] = ("stdout",),
        folder: str | Path | None = None,
        throttle_seconds: float = 0.0,
        stream: TextIO | None = None,
    ) -> None:
        if isinstance(outputs, str):
            raise TypeError(f"outputs must be a tuple of names, got the string {outputs!r}.")
        self.outputs = tuple(outputs)
        for output in self.outputs:
            if output not in OUTPUTS:
                raise ValueError(f"unknown log output {output!r}; expected one of {list(OUTPUTS)}.")
        file_outputs = [output for output in self.outputs if output in FILE_OUTPUTS]
        if file_outputs and folder is None:
            raise ValueError(f"log outputs {file_outputs} write files; pass folder=.")
        if isinstance(throttle_seconds, bool) or not isinstance(throttle_seconds, (int, float)):
            raise TypeError(f"throttle_seconds must be a number, got {throttle_seconds!r}.")
        if not throttle_seconds >= 0:
            raise ValueError(f"throttle_seconds must be >= 0, got {throttle_seconds}.")
        self.folder = Path(folder) if folder is not None else None
        self.throttle_seconds = float(throttle_seconds)
        self.stream = stream
        self.values: dict[str, float] = {}
        self._last_write = -math.inf
        self._csv_keys: list[str] = []
        self._tensorboard = None

    def record(self, key: str, value: float) -> None:
        """Set ``key`` to a real number for the next dump (a later record of the key wins)."""
        if not isinstance(key, str) or not key:
            raise TypeError(f"log keys must be non-empty strings, got {key!r}.")
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(
                f"log value of {key!r} must be a real number, got {type(value).__name__} "
                f"({value!r}); convert tensors with float()."
            )
        self.values[key] = float(value)

    def dump(self, step: int, force: bool = False) -> bool:
        """Write the recorded values at ``step`` and clear them; return whether anything was written.

        Nothing is written when no value was recorded, or when the last write was less than
        ``throttle_seconds`` ago and ``force`` is False.
        """
        if not self.values:
            return False
        now = time.monotonic()
        if not force and now - self._last_write < self.throttle_seconds:
            return False
        self._last_write = now
        values = dict(sorted(self.values.items()))
        self.values.clear()
        if "stdout" in self.outputs:
            self._write_stdout(step, values)
        if "csv" in self.outputs:
            self._write_csv(step, values)
        if "json" in self.outputs:
            self._write_json(step, values)
        if "tensorboard" in self.outputs:
            self._write_tensorboard(step, values)
        return True

    def close(self) -> None:
        """Flush and close the TensorBoard writer (the text files are closed after each dump)."""
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None

    def __enter__(self) -> Logger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _write_stdout(self, step: int, values: dict[str, float]) -> None:
        rows = [("step", str(step))] + [(key, f"{value:.6g}") for key, value in values.items()]
        key_width = max(len(key) for key, _ in rows)
        value_width = max(len(text) for _, text in rows)
        rule = "-" * (key_width + value_width + 7)
        lines = [rule] + [f"| {key:<{key_width}} | {text:<{value_width}} |" for key, text in rows]
        lines.append(rule)
        stream = self.stream if self.stream is not None else sys.stdout
        stream.write("\n".join(lines) + "\n")
        stream.flush()

    def _write_csv(self, step: int, values: dict[str, float]) -> None:
        path = self.folder / CSV_FILE
        if not self._csv_keys and path.exists():
            # A file left by an earlier logger in the same folder is continued, not replaced.
            with path.open(encoding="utf-8", newline="") as handle:
                header = next(csv.reader(handle), ["step"])
            self._csv_keys = [key for key in header if key != "step"]
        new_keys = [key for key in values if key not in self._csv_keys]
        if new_keys or not path.exists():
            old_rows = []
            if path.exists():
                with path.open(encoding="utf-8", newline="") as handle:
                    old_rows = list(csv.DictReader(handle))
            self._csv_keys = self._csv_keys + new_keys
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=["step", *self._csv_keys])
            writer.writeheader()
            writer.writerows(old_rows)
            writer.writerow({"step": step, **values})
            atomic_write_text(path, buffer.getvalue())
            return
        with path.open("a", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["step", *self._csv_keys])
            writer.writerow({"step": step, **values})

    def _write_json(self, step: int, values: dict[str, float]) -> None:
        # JSON has no NaN or infinity, so those values are written as null.
        record = {"step": step}
        record.update(
            {key: value if math.isfinite(value) else None for key, value in values.items()}
        )
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / JSON_FILE).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    def _write_tensorboard(self, step: int, values: dict[str, float]) -> None:
        if self._tensorboard is None:
            # Imported on first use: torch is only needed when TensorBoard output is requested.
            from torch.utils.tensorboard import SummaryWriter

            self._tensorboard = SummaryWriter(log_dir=str(self.folder / TENSORBOARD_FOLDER))
        for key, value in values.items():
            self._tensorboard.add_scalar(key, value, global_step=step)
        self._tensorboard.flush()
