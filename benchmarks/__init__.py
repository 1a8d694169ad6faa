"""The benchmarks behind every number in the README and docs: run from the repository root as
``python -m benchmarks.matrix NAME``, ``python -m benchmarks.results`` (``make results``) and so on;
each module's docstring says what it measures and the records it writes."""
