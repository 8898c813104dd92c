"""The driver layer: the imperative shell around the pure engine, and what people do to a rollout.

``driver`` (one fenced tick: observe, ``decide``, execute through a backend, record), ``recorder``
(the change sets a tick or an intent writes), ``operations`` (approve, triage, pause, resume,
rollback, start, replan), ``loop`` (run until done or a person is needed), ``rehearse`` (a whole
rollout against the simulator in compressed time).

May import: ``rollout.backends``, ``rollout.store``, ``rollout.plan``, ``rollout.core`` and the
foundation. Never a face.
"""
