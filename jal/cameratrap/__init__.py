"""Seed 001's camera-trap labeling pipeline (Norouzzadeh et al. 2019) in jal.

- `frames`: the source/target class split and the empty frames;
- `embedder`: the 256-d embedding CNN, its cross-entropy and triplet
  training, and chunked embedding of a pool;
- `classifier`: the animal/empty detector and the MLP head;
- `pipeline`: the stages in order as an ask/tell `Campaign`, and `run`, the
  simulated oracle's loop.
"""
