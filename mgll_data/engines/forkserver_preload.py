"""The local engine's fork-server preload: imported once, inside the fork server, and nowhere else.

It ties the fork server's life to the build that started it (see `lifeline`: without it a killed build
leaves the server running), records the server's pid for the workers forked from it, then imports the
stages so that those workers start without re-importing spaCy and the decoders. Importing this module in
any other process would tie that process to its parent, so nothing else imports it.
"""

import os

from mgll_data.engines.lifeline import die_with_parent

SERVER_PID = os.getpid()  # inherited by every worker forked from this server: the parent it must not outlive
die_with_parent()

import mgll_data.process  # noqa: E402,F401  (preloading it is this module's purpose)
