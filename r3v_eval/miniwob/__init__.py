"""MiniWoB++ as a real, executable benchmark: the environments in a headless Chromium
(:mod:`~r3v_eval.miniwob.browser`), the gold actions derived from instruction and DOM
(:mod:`~r3v_eval.miniwob.gold`), data generation (:mod:`~r3v_eval.miniwob.generate`, behind
``r3v data miniwob``) and the online scorer that replays a model's action in the environment
(:mod:`~r3v_eval.miniwob.replay`). The action format and the offline scorer are in
:mod:`r3v_eval.benchmarks.miniwob`. Importing this package starts nothing and needs neither
the ``miniwob`` package nor the browser."""
