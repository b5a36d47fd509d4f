"""The ``parasample`` command: one sub-command per domain plus ``tour`` and ``bench``."""
