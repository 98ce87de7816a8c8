"""A fast, seeded sample of the fuzz harness against this checkout: every attempt must be handled.

About 120 forked attempts across every command plus a few signal-mode subprocesses (under a
minute on 2 cores). A failure lists each root-cause signature with its one-line reproducer;
``make fuzz`` runs the long campaign.
"""

from __future__ import annotations

import json

from fuzz.attempt_builders import COMMANDS, make_attempt, signal_attempt
from fuzz.campaign import run_campaign

SEED, ATTEMPTS, SIGNALS = 0, 120, 4
SAMPLED = [name for name in COMMANDS if name != "infer ray"]  # a Ray start per attempt: make fuzz only


def test_fuzz_sample_is_all_handled(tmp_path):
    attempts = [make_attempt(SEED, i, SAMPLED) for i in range(ATTEMPTS)]
    attempts += [signal_attempt(SEED, i) for i in range(SIGNALS)]
    for attempt in attempts:
        attempt.timeout = 60.0 if attempt.command == "export" or attempt.signal or attempt.subprocess else 15.0
    summary = run_campaign(attempts, seed=SEED, jobs=2, findings=tmp_path / "findings").to_dict()
    assert summary["attempts"] == ATTEMPTS + SIGNALS
    problems = "\n".join(f"{g['count']:3d}  {g['signature']}  ->  {g['reproducer']}" for g in summary["signatures"])
    assert summary["mishandled"] == 0, (
        f"{summary['mishandled']} of {summary['attempts']} attempts mishandled "
        f"{json.dumps(summary['by_class'])}; findings in {summary['findings_dir']}:\n{problems}"
    )
