"""A fuzz harness for graphkit's promise: every input is handled, nothing escapes or is half-written.

Generated models (truncated, byte-flipped, random, invalid graphs), golden sets (corrupted in
every known way), pipeline YAML (aliases, nesting, wrong types, hostile paths, NaN tolerances,
unknown keys), misbehaving user passes and hostile flag values are fed to every graphkit
command, each run isolated (private cwd, HOME and TMPDIR; memory and time limits). Each run is
checked against the invariants in :mod:`fuzz.invariants`.

Modules, one concept each:

- :mod:`~fuzz.choices`: where random decisions come from (seeded or atheris bytes);
- :mod:`~fuzz.models`, :mod:`~fuzz.goldens`, :mod:`~fuzz.pipelines`,
  :mod:`~fuzz.userpasses`, :mod:`~fuzz.datasets`: input generators;
- :mod:`~fuzz.attempts`: one attempt = a command line plus the files it reads;
- :mod:`~fuzz.attempt_builders`: one builder per command, and the seeded draw of attempts;
- :mod:`~fuzz.sandbox`: the private folder tree an attempt runs in, and its snapshots;
- :mod:`~fuzz.runner`: running a command (forked in-process or as a subprocess);
- :mod:`~fuzz.invariants`: what must hold after each run;
- :mod:`~fuzz.campaign`: many attempts, findings folder, JSON summary;
- :mod:`~fuzz.coverage`: the coverage-guided mode (atheris, optional extra ``fuzz``).

Run ``python -m fuzz --help`` (or ``make fuzz``).
"""
