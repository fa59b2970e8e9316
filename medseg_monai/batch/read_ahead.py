"""Read and preprocess the next case of a batch in a background thread while the network runs on this one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from medseg_monai.batch.case_outputs import CaseOutputs, case_complete
from medseg_monai.inference import Predictor, PreparedImage

__all__ = ["ReadAhead"]


class ReadAhead:
    """Read and preprocess the next case in a background thread while the network runs on this one.

    Cases whose complete mask will be kept, or that ``taken`` says another process holds, are not read.
    Reading errors surface in the case itself.
    """

    def __init__(
        self,
        predictor: Predictor,
        sources: Sequence[Path],
        indices: Sequence[int],
        output_dir: Path,
        overwrite: bool,
        enabled: bool,
        taken: Callable[[Path], bool] = lambda output: False,
        outputs: CaseOutputs | None = None,
    ):
        self.predictor, self.sources, self.indices = predictor, sources, list(indices)
        self.outputs = outputs or CaseOutputs()
        self.output_dir, self.overwrite, self.taken = output_dir, overwrite, taken
        enabled = enabled and predictor.stitching.prepares_ahead and len(self.indices) > 1
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="medseg-read") if enabled else None
        self.futures: dict[int, Future] = {}

    def _submit(self, position: int) -> None:
        if self.pool is None or position >= len(self.indices) or position in self.futures:
            return
        source = self.sources[self.indices[position]]
        try:
            output = self.predictor.mask_path(source, self.output_dir)
            if self.taken(output) or (
                not self.overwrite and case_complete(self.predictor, source, output, self.outputs)
            ):
                return
        except (OSError, ValueError):
            return  # the case reports it
        self.futures[position] = self.pool.submit(self.predictor.prepare, source)

    def take(self, position: int) -> Callable[[], PreparedImage] | None:
        """The prepared image of case ``position`` (when read ahead), and start reading the next one."""
        self._submit(position)
        future = self.futures.pop(position, None)
        self._submit(position + 1)
        return future.result if future is not None else None

    def discard(self, position: int) -> None:
        """Forget case ``position`` (another process does it) and start reading the next one."""
        future = self.futures.pop(position, None)
        if future is not None:
            future.cancel()
        self._submit(position + 1)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
