"""The real-model corpus: public architectures, exported tiny with seeded random weights, run through graphkit and onnxsim.

``python -m benchmarks.corpus`` (``make corpus``) exports every architecture in :mod:`benchmarks.models` at the
chosen opsets, static and dynamic batch, and runs on each, in separate subprocesses (so peak RSS
is each tool's own): graphkit's generic pass set with full validation, onnxsim, and on static
sources the dynamic-batch probe. Results go to a JSON file and a Markdown table (docs/corpus.md).
See docs/corpus.md.
"""
