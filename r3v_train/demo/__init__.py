"""The embedded demo and the tiny base it starts from.

    driver.py      ``r3v demo``: the shipped recipes run through the loop, then the leaderboard
    claims.py      ``r3v demo-report``: the demo across seeds, its claims checked per seed
    perception.py  the perception rows a tiny base is pre-trained on (per synthetic world)
    pretrain.py    base-model resolution (hub id, ``tiny:``, ``shipped:``) and ``r3v pretrain``
    shipped.py     the models the project ships (``assets/``), checked against their checksums

Nothing here is imported by this package's ``__init__``: importing one module imports only
what it needs.
"""
