"""Model compression: a model folder in, a compressed model folder out (``clinical-llm compress``).

:mod:`llm.compress.methods` names the methods and applies each with a real library (torchao
quantization, torch/torchao pruning); :mod:`llm.compress.folder` writes the compressed folder
and its manifest. Evaluating the variants, by subgroup, is eval's job
(:mod:`eval.compression`); docs/compression.md has both.
"""
