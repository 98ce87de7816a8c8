"""A fuzz harness for graphkit's promise: every input is handled, nothing escapes or is half-written.

Generated models (truncated, byte-flipped, random, invalid graphs), golden sets (corrupted in
every known way), pipeline YAML (aliases, nesting, wrong types, hostile paths, NaN tolerances,
unknown keys), misbehaving user passes and hostile flag values are fed to every graphkit
command, each run isolated (private cwd, HOME and TMPDIR; memory and time limits). Each run is
checked against the invariants in :mod:`graphkit.fuzz.invariants`.

Modules, one concept each:

- :mod:`~graphkit.fuzz.choices`: where random decisions come from (seeded or atheris bytes);
- :mod:`~graphkit.fuzz.models`, :mod:`~graphkit.fuzz.goldens`, :mod:`~graphkit.fuzz.pipelines`,
  :mod:`~graphkit.fuzz.userpasses`, :mod:`~graphkit.fuzz.datasets`: input generators;
- :mod:`~graphkit.fuzz.attempts`: one attempt = a command line plus the files it reads;
- :mod:`~graphkit.fuzz.attempt_builders`: one builder per command, and the seeded draw of attempts;
- :mod:`~graphkit.fuzz.sandbox`: the private folder tree an attempt runs in, and its snapshots;
- :mod:`~graphkit.fuzz.runner`: running a command (forked in-process or as a subprocess);
- :mod:`~graphkit.fuzz.invariants`: what must hold after each run;
- :mod:`~graphkit.fuzz.campaign`: many attempts, findings folder, JSON summary;
- :mod:`~graphkit.fuzz.coverage`: the coverage-guided mode (atheris, optional extra ``fuzz``).

Run ``python -m graphkit.fuzz --help`` (or ``make fuzz``).
"""
