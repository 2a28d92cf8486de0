"""What the lab costs: every study's default preset, its trainings and their measured CPU time, from the runs'
own files (results/runs, or --runs), and the whole lab with each run shared between studies counted once.

`python bench/lab_cost.py [--runs results/runs] [--json bench/results/lab_cost.json]` prints, per study, its
planned trainings, how many have finished runs, the CPU time they took (each run's training seconds × its
threads, so two one-thread runs at once on two cores count both), the wall time on this machine's cores, and what
each run was computed on. Runs trained on a busy machine record longer times than a quiet one gives: the table
says when the runs were trained, not how fast the machine can be. With --flops it adds, per config, the training
work (3 × 2 × MACs per training image, 2 × MACs per validation image) against the achieved rate. With --fp32 it
times a few training steps of each config in fp32 and in bf16 here (bench/step_time.py, one thread) and scales
each run's measured time by that ratio: the lab's cost on this machine without bf16 autocast, estimated.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fmnist_tui import cpu_count  # noqa: E402
from fmnist_tui.core import machine  # noqa: E402
from fmnist_tui.study import lab  # noqa: E402
from fmnist_tui.study.results import SHIPPED, RunRecord  # noqa: E402
from fmnist_tui.study.studies import STUDIES  # noqa: E402


def cpu_seconds(rec: RunRecord) -> float:
    return float(rec.summary.get("train_seconds") or 0.0) * int(rec.config.get("threads") or 1)


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def study_rows(runs: Path) -> tuple[list[dict[str, object]], dict[str, RunRecord]]:
    """One row per study, and every finished run of any study by name."""
    records = {r.run.name: r for r in lab.load([(runs, SHIPPED)])[0]}
    rows, seen = [], set()
    for spec in STUDIES.values():
        names = [c.run_name for c in spec.plan(spec.default, runs)]
        done = [records[n] for n in names if n in records]
        new = [r for r in done if r.run.name not in seen]  # shared runs count for the first study that plans them
        seen.update(names)
        kinds = sorted({f"{r.numerics}, {(r.config.get('machine') or {}).get('cpu', '?')}" for r in done})
        rows.append(
            {
                "study": spec.name,
                "trainings": len(names),
                "finished": len(done),
                "cpu_seconds": round(sum(cpu_seconds(r) for r in done), 1),
                "first_here": len(new),
                "cpu_seconds_first_here": round(sum(cpu_seconds(r) for r in new), 1),
                "computed_on": kinds,
            }
        )
    return rows, records


def flops(records: dict[str, RunRecord]) -> list[dict[str, object]]:
    """Per config: training GFLOP of a run (forward + backward ≈ 3 × forward) and the rate it achieved."""
    by_label: dict[str, list[RunRecord]] = {}
    for rec in records.values():
        by_label.setdefault(rec.run.name.rsplit("-s", 1)[0], []).append(rec)
    out = []
    for label, recs in sorted(by_label.items()):
        cfg, summary = recs[0].config, recs[0].summary
        macs = float(summary.get("macs") or cfg.get("macs") or 0)
        images = int(cfg.get("epoch_images") or 0) * int(summary.get("epochs") or 0)
        val = int(cfg.get("val_images") or 0) * int(summary.get("epochs") or 0)
        gflop = (6 * macs * images + 2 * macs * val) / 1e9
        seconds = sum(float(r.summary.get("train_seconds") or 0) for r in recs) / len(recs)
        threads = int(cfg.get("threads") or 1)
        out.append(
            {
                "config": label,
                "gflop_per_run": round(gflop, 1),
                "gflops_per_thread": round(gflop / seconds / threads, 1),
            }
        )
    return out


def fp32_ratios(records: dict[str, RunRecord]) -> dict[str, float]:
    """Per config label: the time of an fp32 training step over a bf16 one, here, one thread."""
    sys.path.insert(0, str(ROOT / "bench"))
    from step_time import measure

    from fmnist_tui.core.config import TrainConfig

    ratios: dict[str, float] = {}
    for rec in records.values():
        cfg = TrainConfig.from_dict(rec.config)
        if cfg.label not in ratios:
            fp32 = measure(cfg.with_changes(precision="fp32", device="cpu"), threads=1).step_s
            bf16 = measure(cfg.with_changes(precision="bf16", device="cpu"), threads=1).step_s
            ratios[cfg.label] = fp32 / bf16
            print(f"  {cfg.label:<22} fp32 step / bf16 step: {ratios[cfg.label]:.2f}", flush=True)
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "results" / "runs", help="the lab's runs folder")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--flops", action="store_true", help="add each config's training work and achieved rate")
    parser.add_argument("--fp32", action="store_true", help="estimate the lab's cost in fp32 from timed steps")
    args = parser.parse_args()
    rows, records = study_rows(args.runs)
    cores = cpu_count()
    print(f"the lab's default presets, from {args.runs} ({len(records)} finished runs); this machine: {machine.cpu()}")
    print(
        f"{'study':<12} {'trainings':>9} {'finished':>8} {'CPU time':>10} {'new here':>8} {'its CPU time':>12}  "
        "computed on"
    )
    for r in rows:
        print(
            f"{r['study']:<12} {r['trainings']:>9} {r['finished']:>8} {hours(float(r['cpu_seconds'])):>10} "
            f"{r['first_here']:>8} {hours(float(r['cpu_seconds_first_here'])):>12}  {'; '.join(r['computed_on'])}"
        )
    total = sum(float(r["cpu_seconds_first_here"]) for r in rows)
    unique = sum(int(r["first_here"]) for r in rows)
    print(
        f"the whole lab: {unique} distinct trainings, {hours(total)} of CPU time, {hours(total / cores)} on "
        f"{cores} cores"
    )
    runs = args.runs.resolve()
    shown = runs.relative_to(ROOT) if runs.is_relative_to(ROOT) else runs
    doc: dict[str, object] = {"machine": machine.cpu(), "runs": str(shown), "studies": rows}
    doc["total"] = {
        "trainings": unique,
        "cpu_seconds": round(total, 1),
        "wall_seconds_on_these_cores": round(total / cores, 1),
    }
    if args.flops:
        doc["flops"] = flops(records)
        for f in doc["flops"]:  # type: ignore[attr-defined]
            print(
                f"  {f['config']:<22} {f['gflop_per_run']:>10,.0f} GFLOP a run, {f['gflops_per_thread']:>6} "
                "GFLOP/s a thread"
            )
    if args.fp32:
        ratios = fp32_ratios(records)
        from fmnist_tui.core.config import TrainConfig

        fp32 = sum(cpu_seconds(r) * ratios[TrainConfig.from_dict(r.config).label] for r in records.values())
        doc["fp32_estimate"] = {"ratios": ratios, "cpu_seconds": round(fp32, 1)}
        print(f"the whole lab in fp32, estimated: {hours(fp32)} of CPU time, {hours(fp32 / cores)} on {cores} cores")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
