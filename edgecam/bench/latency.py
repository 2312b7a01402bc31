"""Latency per model and backend, set against the machine's own GEMM limit."""
from __future__ import annotations

from edgecam.backends import timing
from edgecam.base.errors import EdgecamError
from edgecam.base.progress import Progress
from edgecam.bench.gemm import describe, gemm_gmacs
from edgecam.models import store


def run_one(model: str, backend: str, threads: int, runs: int, allow_untrained: bool = False) -> dict:
    """Measure in a fresh process; a backend that cannot run there is reported, not fatal."""
    return timing.run_one(model, backend, threads, runs, allow_untrained, entry="edgecam.bench.measure")


def prebuild(model: str, backend: str, allow_untrained: bool) -> str | None:
    """Build what `backend` loads before it is measured, so the measuring process's peak RSS is
    the backend's own and not a build's (which imports torch); the error, if it cannot be built."""
    from edgecam import backends
    from edgecam.bench.measure import float_onnx

    spec = store.get(model)
    try:
        if backend in backends.BACKENDS:
            backends.artifact(backend, spec, allow_untrained)
        elif backend == "opencv-dnn":
            float_onnx(spec)
    except EdgecamError as e:
        return str(e)
    return None


def model_cost(model: str) -> dict:
    """Params and MACs counted from the network itself (needs torch; cached per model)."""
    from edgecam.models import profiler

    spec = store.get(model)
    counted = profiler.profile_network(spec.net, len(spec.labels), spec.input)
    return {"params": counted.params, "macs": counted.macs}


def benchmark(models: list[str], backend_names: list[str], threads: int, runs: int,
              allow_untrained: bool = False) -> dict:
    for model in models:
        store.get(model)  # unknown names fail before anything runs
    machine = describe(threads)
    progress = Progress("benchmark", len(models) * len(backend_names) + 1)
    machine["gemm_gmacs"] = gemm_gmacs(threads)
    progress.advance(note=f"GEMM {machine['gemm_gmacs']:.1f} GMAC/s")
    with_auto = "auto" in backend_names
    measured_names = [b for b in backend_names if b != "auto"]
    rows = []
    choices = {}
    for model in models:
        cost = model_cost(model)
        names = measured_names
        if with_auto:  # auto's choice, made (or remembered) before this run's measurements
            from edgecam.backends import auto

            choices[model] = auto.choose(store.get(model), threads, allow_untrained)
            names = list(dict.fromkeys([*measured_names, choices[model]]))
        for backend in names:
            error = prebuild(model, backend, allow_untrained)
            measured = ({"model": model, "backend": backend, "error": error} if error else
                        run_one(model, backend, threads, runs, allow_untrained))
            row = {**measured, **cost}
            if "median_ms" in row:
                row["fps"] = 1000.0 / row["median_ms"]
                row["gmacs"] = cost["macs"] / (row["median_ms"] / 1000.0) / 1e9
                row["efficiency"] = row["gmacs"] / machine["gemm_gmacs"]
            rows.append(row)
            progress.advance(note=f"{model} {backend}")
    progress.finish()
    _speedups(rows)
    return {"machine": machine, "results": rows, "auto": _auto_against_fastest(rows, choices)}


def _auto_against_fastest(rows: list[dict], choices: dict[str, str]) -> dict[str, dict]:
    """Per model: auto's choice, its latency in this run and how far it is from this run's fastest
    edgecam backend (the baselines are not choices)."""
    from edgecam import backends

    report = {}
    for model, chosen in choices.items():
        mine = {r["backend"]: r["median_ms"] for r in rows
                if r["model"] == model and "median_ms" in r and r["backend"] in backends.BACKENDS}
        if chosen not in mine:
            continue
        fastest = min(mine, key=mine.__getitem__)
        report[model] = {"backend": chosen, "median_ms": mine[chosen], "fastest": fastest,
                         "fastest_ms": mine[fastest], "slower_by": mine[chosen] / mine[fastest] - 1.0}
    return report


def _speedups(rows: list[dict]) -> None:
    """Each row's speed-up over torch eager (the tutorial path) for the same model."""
    eager = {r["model"]: r["median_ms"] for r in rows if r["backend"] == "torch-eager" and "median_ms" in r}
    for row in rows:
        if "median_ms" in row and row["model"] in eager:
            row["vs_torch_eager"] = eager[row["model"]] / row["median_ms"]


def table(report: dict) -> str:
    machine = report["machine"]
    lines = [f"{machine['cpu']} ({machine['arch']}, {machine['cores']} cores), {machine['threads']} "
             f"threads; numpy float32 GEMM {machine['gemm_gmacs']:.1f} GMAC/s",
             "",
             "| model | backend | params (M) | MACs (M) | median ms | p95 ms | FPS | GMAC/s | "
             "% of GEMM | × torch eager | peak RSS MB |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["results"]:
        if "median_ms" not in r:
            lines.append(f"| {r['model']} | {r['backend']} | | | failed: {r['error']} | | | | | | |")
            continue
        lines.append(
            f"| {r['model']} | {r['backend']} | {r['params'] / 1e6:.2f} | {r['macs'] / 1e6:.0f} | "
            f"{r['median_ms']:.2f} | {r['p95_ms']:.2f} | {r['fps']:.1f} | {r['gmacs']:.1f} | "
            f"{r['efficiency'] * 100:.0f}% | {r.get('vs_torch_eager', float('nan')):.2f} | "
            f"{r['peak_rss_mb']:.0f} |")
    if report.get("auto"):
        lines.append("")
    for model, a in report.get("auto", {}).items():
        lines.append(f"auto chose {a['backend']} for {model}: {a['median_ms']:.2f} ms in this run; fastest "
                     f"{a['fastest']} {a['fastest_ms']:.2f} ms ({a['slower_by']:+.0%})")
    return "\n".join(lines)


def plot(report: dict, path: str) -> None:
    """Latency against MACs: one marker per model and backend, one colour per backend."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EdgecamError("--plot needs matplotlib: pip install matplotlib") from None
    rows = [r for r in report["results"] if "median_ms" in r]
    figure, axes = plt.subplots(figsize=(9, 6), dpi=110)
    for backend in dict.fromkeys(r["backend"] for r in rows):
        mine = [r for r in rows if r["backend"] == backend]
        axes.scatter([r["macs"] / 1e6 for r in mine], [r["median_ms"] for r in mine], label=backend,
                     s=40)
        for r in mine:
            axes.annotate(r["model"], (r["macs"] / 1e6, r["median_ms"]), fontsize=7,
                          xytext=(4, 2), textcoords="offset points")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("multiply-accumulates per frame (millions)")
    axes.set_ylabel("median latency, batch 1 (ms)")
    machine = report["machine"]
    axes.set_title(f"edgecam bench: {machine['cpu']}, {machine['threads']} threads")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(title="backend")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
