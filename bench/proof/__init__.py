"""The MGLL proof benchmark (`bench/bench_proof.py`): a known-answer generator, the training protocol over
frozen text embeddings, per-run scoring and the paired comparison against CLIP on concatenated text."""
