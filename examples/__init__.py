"""Runnable example services, one per exchange type, plus one that combines them.

Run one with ``burrowmq run examples.direct:app``; run the whole system end to end with
``python -m examples.demo``.
"""
