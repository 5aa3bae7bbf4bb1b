"""De-identification throughput: one process against Ray Data with 1 and 2 actors.

    .venv/bin/python scripts/bench_ray_deid.py [--patients 60] [--seed 5]
        [--ner statistical|rules] [--ray-address local] [--out build/bench_ray_deid]

Generates a synthetic cohort (``clinical-llm data synth``: notes with PHI, a chest DICOM
and an ECG per patient), then de-identifies it three times with the same key:

* ``one process``: ``deidentify_records(workers=1)``, what ``data deid`` does by default;
* ``ray, 1 actor`` and ``ray, 2 actors``: ``deidentify_records(ray_address=...)`` on one
  Ray (a ``local`` one with 2 CPUs is started once, before the clock, and shared).

Each arm's time is the whole call: reading and validating, building the de-identifier
(once per process or actor), the work, writing OUT. Prints notes/s and patients/s side
by side, and checks that every arm wrote the same bytes (records, evaluation, images,
waveforms) with the same ``read = used + rejected`` counts; exits 1 where they differ.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from llm.data.deid.records import DeidSummary, deidentify_records  # noqa: E402
from llm.data.synth import generate_cohort  # noqa: E402
from llm.ray_cluster import ray_session  # noqa: E402

KEY = b"bench-ray-deid-key-0123456789abcdef"


def _tree(root: Path) -> dict[str, bytes]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def _run(records: Path, out: Path, ner: str, **kwargs: object) -> DeidSummary:
    shutil.rmtree(out.parent, ignore_errors=True)
    return deidentify_records(
        records,
        out,
        key=KEY,
        spans_path=records.parent / "phi_spans.jsonl",
        ner=ner,  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=60)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--ner", choices=("statistical", "rules"), default="statistical")
    parser.add_argument("--ray-address", default="local")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "bench_ray_deid")
    args = parser.parse_args()

    cohort = args.out / "cohort"
    generate_cohort(n_patients=args.patients, seed=args.seed, out_dir=cohort, workers=1)
    records = cohort / "records.jsonl"
    arms: list[tuple[str, Path, DeidSummary]] = []

    out = args.out / "one" / "records.jsonl"
    arms.append(("one process", out.parent, _run(records, out, args.ner, workers=1)))
    started = time.perf_counter()
    with ray_session(args.ray_address, num_cpus=2):
        ray_start = time.perf_counter() - started
        for workers in (1, 2):
            out = args.out / f"ray{workers}" / "records.jsonl"
            summary = _run(records, out, args.ner, workers=workers, ray_address=args.ray_address)
            name = f"ray, {workers} actor{'s' if workers > 1 else ''}"
            arms.append((name, out.parent, summary))

    base_tree, base = _tree(arms[0][1]), arms[0][2]
    print(
        f"{args.patients} patients, {base.notes} notes, {base.images} DICOM images, "
        f"ner {args.ner}; {os.cpu_count()} CPUs; ray {args.ray_address} started in "
        f"{ray_start:.1f} s (not counted below)"
    )
    print(f"{'arm':<16}{'seconds':>9}{'notes/s':>9}{'patients/s':>12}  same output and counts")
    all_same = True
    for name, folder, s in arms:
        same = _tree(folder) == base_tree and (
            (s.stats.read, s.stats.used, s.stats.rejected)
            == (base.stats.read, base.stats.used, base.stats.rejected)
        )
        all_same &= same
        print(
            f"{name:<16}{s.seconds:>9.1f}{s.notes / s.seconds:>9.1f}"
            f"{s.stats.used / s.seconds:>12.2f}  {'yes' if same else 'NO'}"
        )
    return 0 if all_same else 1


if __name__ == "__main__":
    sys.exit(main())
