"""The trainer's Prometheus metrics, served on ``--metrics-port`` while it runs (the training pod is scraped).

A registry of its own (not the process default): only these series, no Python process collectors. Names share
the ``sovereign_finetune_`` prefix; the operator's alerts and dashboard read them.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, start_http_server


class Progress:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        g = lambda name, doc: Gauge(f"sovereign_finetune_{name}", doc, registry=self.registry)  # noqa: E731
        self.step = g("step", "Optimizer steps done")
        self.total_steps = g("total_steps", "Optimizer steps the run will make")
        self.loss = g("loss", "Training loss of the last step (mean token cross-entropy)")
        self.tokens_per_second = g("tokens_per_second", "Training tokens (padding excluded) per second so far")
        self.base_eval_loss = g("base_eval_loss", "Eval loss of the base model on the held-out split")
        self.eval_loss = g("eval_loss", "Eval loss of the base model with the trained adapter")
        self.duration_seconds = g("duration_seconds", "Seconds since the trainer started")
        self.succeeded = g("succeeded", "1 once the run succeeded, 0 while running or after a failure")
        self.server = None

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        if port:
            self.server, _ = start_http_server(port, addr=addr, registry=self.registry)

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
