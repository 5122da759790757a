"""Running and measuring the whole stack: ``sleeplm up``'s launcher, the load generator and ``bench stream``.

Above the entry points (bridge, agents, API), which it starts as processes; nothing below imports it.
"""
