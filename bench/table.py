"""Markdown of a `make bench` run for bench/README.md: the JSON line, the targets met or not, the train parts.

python -m bench.table [bench/out/results.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench import env as E
from bench.run import HEADLINE, RATIOS


def render(results: dict) -> str:
    ratios, context, headline, extras = results["ratios"], results["context"], results["headline"], results["extras"]
    line = json.dumps({**ratios, **context, **headline, **extras})
    out = ["```", line, "```", "", "| key | target | measured | from | |", "|---|---|---|---|---|"]
    source = {
        "overhead_ratio_smoke": f"{context['smoke_wall_s']} s / {context['smoke_pure_s']} s",
        "overhead_ratio_tutorial": f"{context['tutorial_wall_s']} s / {context['tutorial_pure_s']} s",
        "tune_task_ratio": f"{context['tune_task_s']} s / {context['tune_pure_s']} s (Ray start {context['ray_start_s']} s apart)",
        "train_task_ratio": f"{context['train_task_s']} s / {context['train_pure_s']} s",
        "ddp_throughput_ratio": f"{context['ddp_samples_per_s']} / {context['plain_same_threads_samples_per_s']} samples/s, global batch {context['ddp_global_batch']}",
        "bridge_throughput_ratio": f"{context['bridge_mb_per_s']} / {context['raw_mb_per_s']} MB/s",
        "bridge_fixed_s": "intercept of the bridge's time vs size",
        "pss_ratio_vs_rebuilt_peer": f"{context['peak_pss_gib_tutorial']} / {context['rebuilt_peer_peak_pss_gib']} GiB",
    }
    for key in RATIOS:
        t = results["targets"][key]
        verdict = "met" if t["met"] else "**not met**" if t["met"] is False else "-"
        out.append(f"| `{key}` | {t['target']} | {t['measured']} | {source[key]} | {verdict} |")
    parts = results.get("train_overhead_parts", {})
    if parts:
        out += ["", "| train task part (s) | " + " | ".join(parts) + " |", "|---|" + "---|" * len(parts)]
        keys = [k for k in next(iter(parts.values())) if k != "note"]
        for k in keys:
            out.append(f"| {k} | " + " | ".join(str(p.get(k)) for p in parts.values()) + " |")
    out += [
        "",
        "Older headline figures: " + ", ".join(f"`{k}` {headline.get(k)}" for k in HEADLINE),
        f"Load averages (1, 5, 15 min) before {extras['loadavg_before']}, after {extras['loadavg_after']}; "
        f"bench wall {extras['bench_wall_s']} s; quick={extras['quick']}.",
    ]
    return "\n".join(out)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else E.OUT_DIR / "results.json"
    print(render(json.loads(path.read_text())))


if __name__ == "__main__":
    main()
