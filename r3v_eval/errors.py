"""The project's own error type: a problem in what the user gave (a recipe, data, a results
folder), with a message that names it. ``r3v`` prints these in one line and exits 2; any
other exception is a bug or an environment problem and keeps its traceback."""


class R3VError(ValueError):
    """Base of :class:`~r3v_train.config.ConfigError`, :class:`~r3v_eval.benchmarks.DataError`,
    :class:`~r3v_eval.leaderboard.LeaderboardError` and :class:`~r3v_train.pool.PoolError`."""
