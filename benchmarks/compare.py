"""``--compare BASELINE_JSON``: how each scratchgen/PyTorch ratio moved against a saved ``results.json``.

A ratio (our median over PyTorch's, same workload, pass and thread count) is compared rather than a
time, because the ratio cancels most of what the machine's load does to both. For every row timed
in both runs::

    change = new ratio / old ratio - 1          (+12%: that row got 12% slower against PyTorch)

Rows whose ratio grew by more than ``--compare-tolerance`` (default 5%) are flagged, so a commit
that slows any row shows it. Rows timed in only one of the runs are listed apart.

    python -m benchmarks --only model/ --compare benchmarks/baseline/results.json
    python -m benchmarks.compare OLD_RESULTS_JSON NEW_RESULTS_JSON      # two saved runs, no timing
"""
import json
import sys

from .report import is_ours, peer_medians, table, threads_label, timed

DEFAULT_TOLERANCE = 0.05


def load_results(path):
    """A ``results.json``, or a usage error naming the problem."""
    try:
        with open(path) as file:
            results = json.load(file)
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"--compare: expected a results.json written by python -m benchmarks, got {path!r} "
                         f"({error})") from error
    if not isinstance(results, dict) or not isinstance(results.get("runs"), list):
        raise ValueError(f"--compare: expected a results.json with a 'runs' list, got {path!r}")
    return results


def ratios(results):
    """``{(threads, family, workload, pass, contender): our median / PyTorch's}``."""
    found = {}
    for run in results["runs"]:
        peers = peer_medians(run)
        for row in timed(run["rows"]):
            key = (row["workload"], row["pass"])
            if is_ours(row["contender"]) and key in peers:
                found[(run["threads"], row["family"], *key, row["contender"])] = row["median_s"] / peers[key]
    return found


def compare(old, new, tolerance=DEFAULT_TOLERANCE):
    """``(lines, slower, only_old, only_new)``: a table line per row in both runs, the keys whose
    ratio grew by more than ``tolerance``, and the keys timed in one run only."""
    old_ratios, new_ratios = ratios(old), ratios(new)
    lines, slower = [], []
    for key in [k for k in new_ratios if k in old_ratios]:
        change = new_ratios[key] / old_ratios[key] - 1
        flag = "slower" if change > tolerance else ("faster" if change < -tolerance else "")
        if flag == "slower":
            slower.append(key)
        threads, family, workload, pass_name, contender = key
        lines.append([threads_label(threads), family, workload, pass_name, contender,
                      f"{old_ratios[key]:.2f}", f"{new_ratios[key]:.2f}", f"{change:+.1%}", flag])
    only_old = [key for key in old_ratios if key not in new_ratios]
    only_new = [key for key in new_ratios if key not in old_ratios]
    return lines, slower, only_old, only_new


def comparison_markdown(old, new, tolerance=DEFAULT_TOLERANCE, old_name="baseline"):
    lines, slower, only_old, only_new = compare(old, new, tolerance)
    parts = [f"## Ratio change against {old_name}\n\nscratchgen/PyTorch median ratio before and now, and its "
             f"change (positive: slower against PyTorch); rows past ±{tolerance:.0%} are marked."]
    header = ["threads", "family", "workload", "pass", "contender", "before:", "now:", "change:", ""]
    parts.append(table(header, lines) if lines else "No row was timed in both runs.")
    parts.append(f"**{len(slower)} row(s) slower by more than {tolerance:.0%}.**" if slower
                 else f"No row slower by more than {tolerance:.0%}.")
    for label, keys in (("Only in the baseline", only_old), ("Only in this run", only_new)):
        parts.append(unmatched_line(label, keys))
    if old.get("options", {}).get("quick") != new.get("options", {}).get("quick"):
        parts.append("**Warning:** one run is a --quick run (toy sizes) and the other is not: their "
                     "ratios describe different workloads.")
    return "\n\n".join(part for part in parts if part)


def unmatched_line(label, keys, listed=8):
    """The rows timed in one run only: named when few, counted otherwise (a run with --only leaves
    most of a full baseline unmatched). '' when there are none."""
    if not keys:
        return ""
    names = [f"{workload} {pass_name} {contender} ({threads_label(threads)})"
             for threads, _, workload, pass_name, contender in keys]
    more = f" and {len(names) - listed} more" if len(names) > listed else ""
    return f"{label} ({len(names)} rows): " + "; ".join(names[:listed]) + more


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m benchmarks.compare OLD_RESULTS_JSON NEW_RESULTS_JSON", file=sys.stderr)
        return 2
    try:
        old, new = load_results(argv[0]), load_results(argv[1])
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(comparison_markdown(old, new, old_name=argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
