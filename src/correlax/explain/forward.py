"""The batched forward pass: the network over large batches (precision, channels-last, torch.compile or
ONNX Runtime, batch size fitted to the device and halved on out-of-memory)."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import nn

from correlax.explain.settings import CorrelaxSettings, RunSettings
from correlax.models.adapter import model_device

log = logging.getLogger(__name__)

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
CPU_BATCH = 64
MAX_CUDA_BATCH = 2048


class BatchRunner:
    """Forward passes in batches of ``batch_size`` samples, returning float64 probabilities (the sigmoid
    is taken in float64: near 0 or 1 float32 would quantise the small variations that the correlations
    measure) and float32 features. The network runs in PyTorch, or in ONNX Runtime (``run.backend``). The model is
    switched, in place, to eval and channels-last (``run.channels_last``): the explainers give it their working copy
    and, on CUDA, cuDNN tunes its algorithms while batches run.

    ``stream`` cuts a job of ``total`` samples into batches, building the next batch while one runs; on CUDA
    out-of-memory it halves the batch size and retries the same samples. ``passes`` counts the samples run (padding excluded).
    """

    def __init__(self, model: nn.Module, settings: CorrelaxSettings, run: RunSettings | None = None) -> None:
        run = run or RunSettings()
        self.device = model_device(model)
        cuda = self.device.type == "cuda"
        exported = run.backend != "torch"  # the network runs outside PyTorch, on the CPU
        if run.backend == "onnx" and settings.precision != "fp32":
            raise ValueError(f"the onnx backend runs fp32, not {settings.precision}")
        self.channels_last = run.channels_last and not exported
        self.exported = exported
        model.eval()
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        if run.backend == "onnx":
            from correlax.explain.backends import OnnxForward

            self.fn = OnnxForward(model, settings.window)
        elif run.backend == "openvino":
            from correlax.explain.backends import OpenVinoForward

            self.fn = OpenVinoForward(model, settings.window, settings.precision)
        else:
            self.fn = torch.compile(model, dynamic=False) if run.compile else model
        # Few distinct batch shapes on CUDA: a new shape costs cuDNN plan building (and recompilation under
        # torch.compile), so batches are padded up to a multiple of batch_size/8 (to batch_size when compiled).
        self.compiled = run.compile
        self.pad_shapes = run.compile or cuda
        self.dtype = None if exported else _DTYPES.get(settings.precision)  # autocast: PyTorch's own precision
        self.batch_size = run.batch_size or self._fit_batch_size(settings.window)
        self.passes = 0

    def _autocast(self):
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    @contextmanager
    def _cudnn_autotune(self) -> Iterator[None]:
        """cuDNN's algorithm search, on while this runner's batches run: the batch shapes are few, so each
        is tuned once and the fastest kernels are kept for thousands of batches."""
        previous = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = self.device.type == "cuda" or previous
        try:
            yield
        finally:
            torch.backends.cudnn.benchmark = previous

    def _fit_batch_size(self, window: int) -> int:
        """On CUDA: measure the memory of a probe batch and fill about half of the free memory."""
        if self.device.type != "cuda":
            return CPU_BATCH
        probe = 16
        torch.cuda.synchronize(self.device)
        base = torch.cuda.memory_allocated(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        with torch.inference_mode(), self._autocast():
            self.model(self._prepare(torch.rand(probe, 3, window, window, device=self.device)))
        per_sample = max(1, (torch.cuda.max_memory_allocated(self.device) - base) // probe)
        free, _ = torch.cuda.mem_get_info(self.device)
        fit = int(0.5 * free // per_sample)
        size = 1 << max(0, min(fit, MAX_CUDA_BATCH).bit_length() - 1)
        log.info("batch size %d (%.1f MiB per sample, %.0f MiB free)", size, per_sample / 2**20, free / 2**20)
        return size

    @contextmanager
    def _host_threads(self) -> Iterator[None]:
        """With the network outside PyTorch (its own thread pool), PyTorch runs only the engine's host work on small
        tensors: one thread, so that it does not spread over the cores that the network is using. Process-wide
        (``torch.set_num_threads``) while the stream runs; restored after."""
        previous = torch.get_num_threads()
        if self.exported:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(previous)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = x.shape[0]
        if self.pad_shapes:
            bucket = self.batch_size if self.compiled else max(1, self.batch_size // 8)
            padded = -(-n // bucket) * bucket
            if padded > n:
                x = torch.cat([x, x.new_zeros(padded - n, *x.shape[1:])])
        with torch.inference_mode(), self._autocast(), self._cudnn_autotune():
            out = self.fn(self._prepare(x))
        self.passes += n
        return torch.sigmoid(out.logits[:n].to(self.device, torch.float64)), out.features[:n].to(self.device, torch.float32)

    def stream(
        self,
        total: int,
        build: Callable[[int, int], tuple[torch.Tensor, Any]],
        consume: Callable[[int, int, torch.Tensor, torch.Tensor, Any], None],
    ) -> None:
        """For consecutive [start, stop) slices: ``x, extra = build(start, stop)``, forward,
        ``consume(start, stop, probs, features, extra)``, in order. Building and consuming run in one worker
        thread, in the order submitted (consume of a slice, then build of the one after next), while the main thread
        runs the network (whose forward releases the GIL): only the network is on the critical path. So ``build``
        must not depend on what ``consume`` does. Every consume has finished when this returns."""
        start = 0
        ahead: tuple[int, int, Future] | None = None  # the next slice, being built
        consumed: deque[Future] = deque()  # consume calls submitted and not yet checked
        with self._host_threads(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="correlax-host") as pool:
            while start < total:
                stop = min(total, start + self.batch_size)
                x = extra = None
                try:
                    if ahead is not None and ahead[:2] == (start, stop):
                        x, extra = ahead[2].result()
                    else:
                        x, extra = build(start, stop)
                    ahead = None
                    if stop < total:
                        following = min(total, stop + self.batch_size)
                        ahead = (stop, following, pool.submit(build, stop, following))
                    probs, feats = self.forward(x)
                except torch.cuda.OutOfMemoryError:
                    if self.batch_size == 1:
                        raise
                    if ahead is not None:
                        ahead[2].exception()  # let it finish (or fail) before its memory is freed
                    x = extra = ahead = None  # free before retrying
                    self.batch_size //= 2
                    torch.cuda.empty_cache()
                    log.warning("CUDA out of memory: batch size halved to %d", self.batch_size)
                    continue
                while consumed and consumed[0].done():
                    consumed.popleft().result()  # raises what a consume raised
                consumed.append(pool.submit(consume, start, stop, probs, feats, extra))
                start = stop
            for future in consumed:
                future.result()
