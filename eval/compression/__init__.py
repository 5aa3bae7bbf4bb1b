"""Compressed variants against their uncompressed model: who pays for the compression.

``changes`` pairs two models' predictions on the same examples and measures the change in
accuracy overall and per subgroup (paired bootstrap intervals); ``gate`` fails a variant
when any subgroup loses more than a margin; ``speed`` times the models side by side;
``report`` writes JSON and Markdown; ``run`` does it all for a suite (``clinical-llm
compress report``). docs/compression.md.
"""
