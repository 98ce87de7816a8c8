"""Benchmarks and the real-model corpus: test tooling beside the product, never installed with it.

Run from the repository root as modules (``python -m benchmarks.pass_scaling``,
``python -m benchmarks.corpus``; ``make bench``, ``make corpus``). :mod:`benchmarks.models` is
the one module of model builders that the corpus, the benchmarks and the tests share.
"""
