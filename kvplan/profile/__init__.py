"""Profile mode: build the spec's model in torch, allocate its caches, run it, measure.

``model.py`` builds the modules, ``cache.py`` the static caches (the ideal layout of
:func:`kvplan.memory.cache_plan`), ``measure.py`` reads the torch allocator, NVML and timers, and
``run.py`` runs the phases and sets measured against estimated. Importing this package does not
import torch; ``run.py`` does so lazily and says how to install it when it is missing.
"""
