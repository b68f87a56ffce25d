"""What a run leaves behind: ``results.json`` (every figure), ``REPORT.md`` (the tables) and one
PNG per scaling series (time and peak memory against size).

REPORT.md answers three questions in order: how fast is scratchgen compared with PyTorch (the
ratio table, 1 thread first), how far from the machine's limit (the ceilings, and each kernel's
rate as a fraction of them), and how it scales (time and memory against size).
"""
import json
import os
import re

from .workload import PEERS

RATE_UNITS = {  # unit of Work -> (column label, rate in units/s -> shown value)
    "flop": ("GFLOP/s", lambda rate: rate / 1e9),
    "byte": ("GB/s", lambda rate: rate / 1e9),
    "example": ("examples/s", lambda rate: rate),
    "token": ("tokens/s", lambda rate: rate),
    "op": ("µs/op", lambda rate: 1e6 / rate),
}


def write_outputs(results, folder, image_prefix=""):
    """Write results.json, the plots and REPORT.md into ``folder``; returns the markdown.
    ``image_prefix`` is put before the PNG names in the markdown (for a report kept elsewhere)."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "results.json"), "w") as file:
        json.dump(results, file, indent=1)
    images = write_plots(results, folder)
    markdown = report_markdown(results, {series: image_prefix + name for series, name in images.items()})
    with open(os.path.join(folder, "REPORT.md"), "w") as file:
        file.write(markdown)
    return markdown


def report_markdown(results, images=None):
    sections = [f"# scratchgen benchmarks\n\n{summary_line(results)}", machine_section(results),
                ceilings_section(results), ratio_section(results), compilation_section(results),
                scaling_section(results, images or {}),
                detail_section(results), notes_section(results)]
    return "\n\n".join(section for section in sections if section) + "\n"


# A timed row is noisy (its median not to be trusted alone) with fewer rounds than this, or an
# inter-quartile range wider than this fraction of its median.
NOISY_RUNS, NOISY_IQR = 5, 0.25


# ---- small helpers -----------------------------------------------------------------------------------
def noise(row):
    """Why ``row``'s median is not to be trusted alone ('' if it is): few rounds, or a wide IQR."""
    reasons = []
    if row["runs"] < NOISY_RUNS:
        reasons.append(f"{row['runs']} run{'s' if row['runs'] > 1 else ''}")
    spread = (row["q75_s"] - row["q25_s"]) / row["median_s"] if row["median_s"] > 0 else 0.0
    if spread > NOISY_IQR:
        reasons.append(f"IQR {spread:.0%} of the median")
    return ", ".join(reasons)


def flagged(text, *rows):
    """``text`` with a mark when any of ``rows`` is noisy (the mark is explained under the table)."""
    return f"{text} ~" if any(noise(row) for row in rows) else text


NOISE_LEGEND = (f"`~`: a noisy figure (fewer than {NOISY_RUNS} timed rounds, or an inter-quartile range over "
                f"{NOISY_IQR:.0%} of the median): rerun it alone on a quiet machine before reading anything into it.")


def is_ours(contender):
    return contender is not None and contender not in PEERS


def timed(rows):
    return [row for row in rows if "median_s" in row]


def peer_medians(run, peer="torch"):
    return {(r["workload"], r["pass"]): r["median_s"] for r in timed(run["rows"]) if r["contender"] == peer}


def peer_rows(run, peer="torch"):
    return {(r["workload"], r["pass"]): r for r in timed(run["rows"]) if r["contender"] == peer}


def threads_label(count):
    return f"{count} thread{'s' if count > 1 else ''}"


def workload_label(row):
    return f"{row['workload']} (DESIGN)" if row.get("design") else row["workload"]


def table(header, lines):
    """A markdown table; ``header`` entries ending in ':' are right-aligned."""
    names = [name.rstrip(":") for name in header]
    rule = ["---:" if name.endswith(":") else "---" for name in header]
    return "\n".join("| " + " | ".join(str(cell) for cell in line) + " |" for line in [names, rule, *lines])


def figure(value):
    """Three significant digits, no exponent for what a table holds: 1234.5 -> 1234, 12.34 -> 12.3."""
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def milliseconds(seconds):
    return figure(seconds * 1e3)


def shown_rate(row):
    if "rate" not in row:
        return "-"
    label, convert = RATE_UNITS[row["unit"]]
    return f"{figure(convert(row['rate']))} {label}"


def mebibytes(row):
    return figure(row["peak_bytes"] / 2 ** 20) if row.get("peak_bytes") is not None else "-"


# ---- sections ----------------------------------------------------------------------------------------
def summary_line(results):
    options = results["options"]
    mode = "quick smoke run (toy sizes, one timed round: the figures mean nothing)" if options["quick"] else \
        "full run"
    only = f", workloads matching `{results['only']}`" if results.get("only") else ""
    return (f"{mode}{only}; {results['created']}; {results['elapsed_s']:.0f} s in all; threads "
            f"{', '.join(map(str, results['threads']))}; implementations {', '.join(options['impls'])}; "
            f"peers {', '.join(options['peers'])}.\n\nCommand: `{results['command']}`. "
            "Times are medians over interleaved rounds (IQR beside them); the first call (Numba "
            "compilation or cache loading) is timed apart. 1 thread is the figure that counts; more threads "
            "swing on shared cores.")


def machine_section(results):
    machine = results.get("machine")
    if not machine:
        return "## Machine\n\nno worker finished: nothing was measured."
    versions = ", ".join(f"{name} {version}" for name, version in machine["versions"].items() if version)
    environment = ", ".join(f"{name}={value}" for name, value in machine["environment"].items()
                            if value is not None) or "none set"
    blas = "; ".join(describe_blas(lib) for lib in machine["blas"] if lib.get("user_api") == "blas")
    lines = [f"- CPU: {machine['cpu']}, {machine['logical_cores']} logical cores "
             f"({machine['usable_cores']} usable)",
             f"- Python {machine['python']}; {versions}", f"- BLAS: {blas or 'none found'}",
             f"- Environment: {environment}"]
    lines += [f"- **Warning**: {warning}" for warning in results.get("warnings", [])]
    return "## Machine\n\n" + "\n".join(lines)


def describe_blas(library):
    """One threadpoolctl entry in words: which library, which version, which kernel it picked."""
    where = os.path.basename(library.get("filepath", ""))
    return (f"{library.get('internal_api')} {library.get('version')} ({library.get('architecture', '-')} "
            f"kernel, {library.get('threading_layer', '-')}) from {where}")


def ceilings_section(results):
    lines = []
    for run in results["runs"]:
        ceilings = run.get("ceilings") or {}
        gemm, bandwidth = ceilings.get("gemm_gflops"), ceilings.get("bandwidth_gbs")
        pinned = run.get("pinned") or {}
        pools = ", ".join(f"{name} {count}" for name, count in pinned.get("pools", {}).items())
        pins = f"numba {pinned.get('numba')}, torch {pinned.get('torch')}, {pools}" if pinned else "-"
        lines.append([threads_label(run["threads"]), figure(gemm) if gemm else "-",
                      figure(bandwidth) if bandwidth else "-", pins])
    return ("## Ceilings\n\nMeasured, not quoted: NumPy's fp32 matmul (GEMM) and a large array copy/add "
            "(bytes read + written). Kernel rates below are fractions of these. The last column is what "
            "each thread pool ran with.\n\n"
            + table(["threads", "GEMM GFLOP/s:", "bandwidth GB/s:", "threads pinned"], lines))


def ratio_section(results):
    parts = ["## scratchgen / PyTorch\n\nMedian time of each scratchgen contender divided by PyTorch's on "
             "the same workload and pass (below 1: scratchgen is faster). `scratchgen[IMPL]` is the user's "
             "path (Tensors through autograd, kernels of IMPL), `kernel[IMPL]` the kernels alone; "
             "`torch.compile`, where run, is the PyTorch twin compiled by PyTorch (a row it could not "
             "compile is under Not run, with the error)."]
    for run in results["runs"]:
        peers = peer_rows(run)
        rows = [row for row in timed(run["rows"]) if is_ours(row["contender"])
                and (row["workload"], row["pass"]) in peers]
        if not rows:
            continue
        contenders = list(dict.fromkeys(row["contender"] for row in rows))
        cells = {}
        for row in rows:
            key = (row["family"], workload_label(row), row["pass"])
            peer = peers[row["workload"], row["pass"]]
            cells.setdefault(key, {})[row["contender"]] = flagged(f"{row['median_s'] / peer['median_s']:.2f}", row, peer)
        lines = [[family, workload, pass_name, *(ratios.get(c, "-") for c in contenders)]
                 for (family, workload, pass_name), ratios in cells.items()]
        parts.append(f"### {threads_label(run['threads'])}\n\n"
                     + table(["family", "workload", "pass", *(f"{c}:" for c in contenders)], lines)
                     + "\n\n" + NOISE_LEGEND)
    return "\n\n".join(parts) if len(parts) > 1 else ""


def compilation_section(results):
    """The first calls measured in setup (``Precompiled``: torch.compile's compilation), with what
    the compiler's caches held, beside the steady-state median: the price of each compiled row."""
    lines = [[threads_label(run["threads"]), row["workload"], row["pass"], row["contender"],
              f"{row['first_call_s']:.1f}", milliseconds(row["median_s"]), row["first_call_note"] or "-"]
             for run in results["runs"] for row in timed(run["rows"]) if "first_call_note" in row]
    if not lines:
        return ""
    return ("## Compilation\n\nContenders compiled before their timing (`torch.compile`: inductor, CPU): the "
            "first call, which compiles, in seconds, and the median of the compiled calls after it. With warm "
            "on-disk caches (a second run) the first call is a fraction of a cold one.\n\n"
            + table(["threads", "workload", "pass", "contender", "first call s:", "median ms:", "caches"], lines))


def detail_section(results):
    parts = ["## All figures\n\nRates use each workload's FLOP (or byte, example, op) count; `of ceiling` "
             "is the rate over the GEMM (FLOPs) or bandwidth (bytes) ceiling of the same thread count. Peak "
             "memory is tracemalloc's (NumPy's allocations in one call), for scratchgen contenders only."]
    header = ["family", "workload", "pass", "contender", "median ms:", "IQR ms:", "runs:", "first call ms:",
              "rate:", "of ceiling:", "peak MiB:", "vs torch:", "noisy"]
    for run in results["runs"]:
        peers = peer_medians(run)
        lines = []
        for row in timed(run["rows"]):
            peer = peers.get((row["workload"], row["pass"]))
            fraction = row.get("fraction_of_ceiling")
            lines.append([row["family"], workload_label(row), row["pass"], row["contender"],
                          milliseconds(row["median_s"]), milliseconds(row["q75_s"] - row["q25_s"]),
                          row["runs"], milliseconds(row["first_call_s"]), shown_rate(row),
                          f"{fraction:.0%}" if fraction is not None else "-", mebibytes(row),
                          f"{row['median_s'] / peer:.2f}" if peer and is_ours(row["contender"]) else "-",
                          noise(row) or "-"])
        parts.append(f"### {threads_label(run['threads'])}\n\n" + table(header, lines))
    return "\n\n".join(parts)


def notes_section(results):
    skipped, errors = {}, []
    for run in results["runs"]:
        if "error" in run:
            errors.append(f"- {threads_label(run['threads'])}: {run['error']}")
        for row in run["rows"]:
            where = " / ".join(str(part) for part in (row["family"], row["workload"], row["pass"],
                                                       row["contender"]) if part)
            if "skipped" in row:
                skipped.setdefault(where, row["skipped"])
            elif "error" in row:
                errors.append(f"- {where} ({threads_label(run['threads'])}): `{row['error']}`")
    parts = []
    if skipped:
        parts.append("## Not run\n\n" + "\n".join(grouped_by_reason(skipped)))
    if errors:
        parts.append("## Errors\n\n" + "\n".join(errors))
    return "\n\n".join(parts)


def grouped_by_reason(skipped):
    """One line per reason: a missing peer is said once, with how many rows it left out, not
    once per row."""
    by_reason = {}
    for where, why in skipped.items():
        by_reason.setdefault(why, []).append(where)
    lines = []
    for why, places in by_reason.items():
        if len(places) == 1:
            lines.append(f"- {places[0]}: {why}")
        else:
            lines.append(f"- {why}: {len(places)} rows left out ({places[0]}, ...)")
    return lines


# ---- scaling -----------------------------------------------------------------------------------------
def series_rows(results):
    """``{series: rows}`` of the first run (the fewest threads: the figure that counts)."""
    found = {}
    if results["runs"]:
        for row in timed(results["runs"][0]["rows"]):
            if row.get("series"):
                found.setdefault(row["series"], []).append(row)
    return found


def scaling_section(results, images):
    parts = []
    for series, rows in series_rows(results).items():
        contenders = list(dict.fromkeys(row["contender"] for row in rows))
        points = sorted({(row["x"], row["pass"]) for row in rows}, key=lambda point: (point[1], point[0]))
        by_point = {(row["x"], row["pass"], row["contender"]): row for row in rows}
        axis = series.split(" vs ")[-1]
        times = [[f"{x:g}", pass_name, *(milliseconds(by_point[x, pass_name, c]["median_s"])
                                        if (x, pass_name, c) in by_point else "-" for c in contenders)]
                 for x, pass_name in points]
        measured = [c for c in contenders
                    if any(r.get("peak_bytes") is not None for r in rows if r["contender"] == c)]
        memory = [[f"{x:g}", pass_name, *(mebibytes(by_point.get((x, pass_name, c), {})) for c in measured)]
                  for x, pass_name in points]
        header = [axis, "pass", *(f"{c}:" for c in contenders)]
        part = f"### {series}\n\nMedian ms:\n\n" + table(header, times)
        if measured:
            header = [axis, "pass", *(f"{c}:" for c in measured)]
            part += "\n\nPeak MiB (tracemalloc):\n\n" + table(header, memory)
        if series in images:
            part += f"\n\n![{series}]({images[series]})"
        parts.append(part)
    if not parts:
        return ""
    label = threads_label(results["runs"][0]["threads"])
    return f"## Scaling ({label})\n\n" + "\n\n".join(parts)


PASS_STYLES = {"forward+backward": "-", "forward": "--"}
MARKERS = "osD^vP*X<>"
SMOKE_RUN_LABEL = "SMOKE RUN (--quick): toy sizes, one round each; these figures mean nothing"


def write_plots(results, folder):
    """One PNG per scaling series, time and peak memory against size, log-log: a colour and a
    marker per contender, solid forward+backward, dashed forward; each time carries its IQR as
    an error bar, and each contender's points sit slightly apart on the x axis so that series
    that overlap stay visible. A quick run's plots say they are smoke runs. Returns
    ``{series: file name}``."""
    found = series_rows(results)
    if not found:
        return {}
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot
    images = {}
    for series, rows in found.items():
        figure = plot_series(pyplot, series, rows, results)
        name = "scaling-" + re.sub(r"[^a-z0-9]+", "-", series.lower()).strip("-") + ".png"
        figure.savefig(os.path.join(folder, name), dpi=80)
        pyplot.close(figure)
        images[series] = name
    return images


def plot_series(pyplot, series, rows, results):
    from matplotlib.lines import Line2D
    contenders = list(dict.fromkeys(row["contender"] for row in rows))
    looks = {c: dict(color=f"C{index % 10}", marker=MARKERS[index % len(MARKERS)])
             for index, c in enumerate(contenders)}
    # multiplicative offsets on the log x axis, centred: ~3% apart, far less than one size step
    nudge = {c: 1.03 ** (index - (len(contenders) - 1) / 2) for index, c in enumerate(contenders)}
    figure, (times, memory) = pyplot.subplots(1, 2, figsize=(11, 4.2))
    for (contender, pass_name), line in group_lines(rows).items():
        style = dict(linestyle=PASS_STYLES.get(pass_name, ":"), markerfacecolor="none", **looks[contender])
        xs = [r["x"] * nudge[contender] for r in line]
        medians = [r["median_s"] * 1e3 for r in line]
        spread = [[(r["median_s"] - r["q25_s"]) * 1e3 for r in line], [(r["q75_s"] - r["median_s"]) * 1e3 for r in line]]
        times.errorbar(xs, medians, yerr=spread, capsize=3, **style)
        peaks = [r for r in line if r.get("peak_bytes") is not None]
        memory.plot([r["x"] * nudge[contender] for r in peaks], [r["peak_bytes"] / 2 ** 20 for r in peaks], **style)
    sizes = sorted({row["x"] for row in rows})
    measured = any(row.get("peak_bytes") is not None for row in rows)
    for axes, label in ((times, "median time (ms), bars: IQR"), (memory, "peak NumPy memory (MiB, tracemalloc)")):
        # a log axis needs data: memory is not measured in every run
        axes.set(xscale="log", yscale="log" if axes is times or measured else "linear",
                 xlabel=series.split(" vs ")[-1], ylabel=label)
        axes.set_xticks(sizes, [f"{x:g}" for x in sizes], minor=False)
        axes.set_xticks([], minor=True)  # only the sizes measured on the x axis
        axes.grid(True, alpha=0.3)
    times.legend([Line2D([], [], linestyle="", markerfacecolor="none", **looks[c]) for c in contenders],
                 contenders, fontsize=7, loc="upper left")
    memory.legend([Line2D([], [], color="k", linestyle=style) for style in PASS_STYLES.values()],
                  list(PASS_STYLES), fontsize=7, loc="upper left")
    title = f"{series} ({threads_label(results['runs'][0]['threads'])})"
    if results["options"]["quick"]:
        title += f"\n{SMOKE_RUN_LABEL}"
        for axes in (times, memory):
            axes.text(0.5, 0.5, "SMOKE RUN", transform=axes.transAxes, fontsize=28, color="red", alpha=0.2,
                      ha="center", va="center", rotation=20)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def group_lines(rows):
    lines = {}
    for row in sorted(rows, key=lambda row: row["x"]):
        lines.setdefault((row["contender"], row["pass"]), []).append(row)
    return lines
