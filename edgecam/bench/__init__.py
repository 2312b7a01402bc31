"""Benchmarks: per-model latency by backend, the pipeline against inference alone, start-up.

Every figure is measured in one run on this machine; latencies are medians and p95 over repeated
single-frame inferences, each (model, backend) in a fresh process so that peak RSS is its own."""
